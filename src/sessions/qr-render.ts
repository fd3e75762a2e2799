import QRCode from 'qrcode';

/** A QR code payload drawn the three ways tenants show it. */
export interface RenderedQr {
  png: Buffer;
  svg: string;
  /** For terminals: Unicode half blocks, two modules per character row. */
  terminal: string;
}

/** Draws the payload WhatsApp's app scans (error correction L, as WhatsApp Web uses). */
export async function renderQr(payload: string): Promise<RenderedQr> {
  const options = { errorCorrectionLevel: 'L' as const, margin: 2 };
  const [png, svg, terminal] = await Promise.all([
    QRCode.toBuffer(payload, { ...options, type: 'png', width: 512 }),
    QRCode.toString(payload, { ...options, type: 'svg' }),
    QRCode.toString(payload, { ...options, type: 'terminal', small: true }),
  ]);
  return { png, svg, terminal };
}
