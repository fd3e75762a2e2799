import type { InboundMessage } from './engine.js';
import { SandboxSendLog } from './sandbox-send-log.js';

/** What the network needs of a session that is online with a device's credentials. */
export interface NetworkConnection {
  /** Another client came online with the same credentials (WhatsApp's 440 conflict). */
  replaced(): void;
  /** A message for this account arrived. */
  receive(message: InboundMessage): void;
}

/** What the network remembers of one companion device. */
interface DeviceRecord {
  phoneNumber: string;
  index: number;
  unlinked: boolean;
}

/** Whether the network will let a device's credentials in. */
export type DeviceStanding = 'linked' | 'unlinked' | 'unknown';

/**
 * The simulated WhatsApp server: which companion devices are linked to
 * which phone numbers, which of them are online, and who receives what.
 * Every sandbox engine has one; engines built with the same network act as
 * workers on one WhatsApp (a device resumed on a second engine replaces its
 * connection on the first, a message to a linked number arrives there).
 * Every well-formed phone number exists and behaves like a phone that is
 * always online; numbers linked here additionally receive messages. Like
 * WhatsApp, it takes a message id once: `sendLog` remembers every send (in a
 * file shared across processes when given one).
 */
export class SandboxNetwork {
  constructor(readonly sendLog: SandboxSendLog = new SandboxSendLog()) {}

  private readonly devices = new Map<string, DeviceRecord>();
  private readonly online = new Map<string, NetworkConnection>();
  private readonly lastIndex = new Map<string, number>();

  /** Links a new companion device to an account; returns its device index (1, 2, ...). */
  linkDevice(deviceKey: string, phoneNumber: string): number {
    const index = (this.lastIndex.get(phoneNumber) ?? 0) + 1;
    this.lastIndex.set(phoneNumber, index);
    this.devices.set(deviceKey, { phoneNumber, index, unlinked: false });
    return index;
  }

  /**
   * Learns of a device linked through another network (another worker's
   * sandbox): its checkpoint is trusted, as WhatsApp trusts valid credentials.
   * A device this network saw unlinked stays unlinked.
   */
  adoptDevice(deviceKey: string, phoneNumber: string, index: number): void {
    if (this.devices.has(deviceKey)) return;
    this.devices.set(deviceKey, { phoneNumber, index, unlinked: false });
    this.lastIndex.set(phoneNumber, Math.max(index, this.lastIndex.get(phoneNumber) ?? 0));
  }

  standing(deviceKey: string): DeviceStanding {
    const device = this.devices.get(deviceKey);
    if (device === undefined) return 'unknown';
    return device.unlinked ? 'unlinked' : 'linked';
  }

  /** The phone removed the device (or the device logged out): its credentials are refused from now on. */
  unlinkDevice(deviceKey: string): void {
    const device = this.devices.get(deviceKey);
    if (device !== undefined) device.unlinked = true;
  }

  /** Brings a device online; whoever held its credentials before is told it was replaced. */
  connect(deviceKey: string, connection: NetworkConnection): void {
    const previous = this.online.get(deviceKey);
    this.online.set(deviceKey, connection);
    if (previous !== undefined && previous !== connection) previous.replaced();
  }

  /** Takes a device offline, unless another connection has replaced this one meanwhile. */
  disconnect(deviceKey: string, connection: NetworkConnection): void {
    if (this.online.get(deviceKey) === connection) this.online.delete(deviceKey);
  }

  /** Hands a message to every online device of the recipient's account but the sender; returns how many got it. */
  deliver(toPhoneNumber: string, message: InboundMessage, sender: NetworkConnection): number {
    let delivered = 0;
    for (const [deviceKey, connection] of [...this.online]) {
      const device = this.devices.get(deviceKey);
      if (connection === sender || device === undefined || device.phoneNumber !== toPhoneNumber) continue;
      connection.receive({ ...message });
      delivered++;
    }
    return delivered;
  }

  /** Devices online right now; for tests that check nothing is left behind. */
  get onlineCount(): number {
    return this.online.size;
  }
}
