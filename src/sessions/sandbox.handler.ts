import type { ServiceImpl } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import {
  InjectInboundResponseSchema,
  ScanQrResponseSchema,
  type SandboxService as SandboxServiceDesc,
} from '../../gen/switchboard/v1/sandbox_pb.js';
import { requirePrincipal } from '../transport/auth.interceptor.js';
import { requestEntityManager } from '../transport/interceptors.js';
import type { SessionService } from './session.service.js';

/** SandboxService: the sandbox's simulated phone and contacts (protobuf <-> domain only). */
export function createSandboxHandler(sessions: SessionService): ServiceImpl<typeof SandboxServiceDesc> {
  return {
    async scanQr(req, ctx) {
      await sessions.sandboxScan(requestEntityManager(ctx), requirePrincipal(ctx), {
        sessionId: req.sessionId,
        phoneNumber: req.phoneNumber,
        pushName: req.pushName,
        qrPayload: req.qrPayload,
        pairingCode: req.pairingCode,
      });
      return create(ScanQrResponseSchema, {});
    },
    async injectInbound(req, ctx) {
      const id = await sessions.sandboxInject(requestEntityManager(ctx), requirePrincipal(ctx), {
        sessionId: req.sessionId,
        from: req.from,
        text: req.text,
      });
      return create(InjectInboundResponseSchema, { whatsappMessageId: id });
    },
  };
}
