import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { Request, ResponseSchema } from '../../gen/switchboard/v1/worker_pb.js';
import type { Clock } from '../../lib/clock.js';
import { DomainError } from '../../lib/errors.js';
import type { Scheduler, Timer } from '../../lib/timers.js';
import { SandboxSession, type SandboxControls } from '../engines/sandbox.engine.js';
import type { Hosted } from './hosted.js';

/** A Response as it goes up the stream, on the request's correlation id. */
export type ResponseInit = MessageInitShape<typeof ResponseSchema>;
type ResponseResult = ResponseInit['result'];

/**
 * Performs a tenant's request on a hosted session: the legacy synchronous
 * send (no id of ours, so no dedupe; the pipeline dispatches instead), pairing
 * codes and the sandbox's controls.
 */
export async function perform(hosted: Hosted, action: Request['action']): Promise<ResponseResult> {
  switch (action.case) {
    case 'sendText': {
      const { messageId } = await hosted.session.sendText(action.value.to, action.value.text);
      return { case: 'messageId', value: messageId };
    }
    case 'requestPairingCode': {
      const code = await hosted.session.requestPairingCode(action.value.phoneNumber);
      // Engines announce the code's expiry in the pairingCode event, emitted before they return it.
      const announced = hosted.pairingCode?.code === code ? hosted.pairingCode : undefined;
      return {
        case: 'pairingCode',
        value: { code, ...(announced ? { expiresAt: timestampFromDate(announced.expiresAt) } : {}) },
      };
    }
    case 'sandboxScan': {
      const controls = sandboxControls(hosted);
      if (action.value.pairingCode) {
        controls.enterPairingCode(action.value.pairingCode, { pushName: action.value.pushName || undefined });
        return { case: 'done', value: true };
      }
      const payload = action.value.qrPayload || controls.currentQr()?.payload;
      if (payload === undefined) {
        throw new DomainError('FAILED_PRECONDITION', `no QR code is shown: the session is ${controls.state}`);
      }
      controls.scanQr(payload, {
        phoneNumber: action.value.phoneNumber,
        pushName: action.value.pushName || undefined,
      });
      return { case: 'done', value: true };
    }
    case 'sandboxInbound': {
      const message = sandboxControls(hosted).injectInbound(action.value.from, action.value.text);
      return { case: 'messageId', value: message.messageId };
    }
    case undefined:
      throw DomainError.invalidArgument('action', 'the request names no action');
    default:
      return action satisfies never;
  }
}

export async function withDeadline(
  time: { clock: Clock; scheduler: Scheduler },
  deadline: Date | undefined,
  work: () => Promise<ResponseResult>,
): Promise<ResponseResult> {
  if (deadline === undefined) return work();
  const remainingMs = deadline.getTime() - time.clock.now().getTime();
  if (remainingMs <= 0) {
    throw new DomainError('DEADLINE_EXCEEDED', 'the deadline had passed when the request arrived; nothing was done');
  }
  let timer: Timer | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = time.scheduler.schedule(remainingMs, () =>
      reject(
        new DomainError(
          'DEADLINE_EXCEEDED',
          `the session did not answer within ${remainingMs} ms; the action may still complete`,
        ),
      ),
    );
  });
  try {
    return await Promise.race([work(), expired]);
  } finally {
    timer?.cancel();
  }
}

function sandboxControls(hosted: Hosted): SandboxControls {
  if (hosted.engine !== 'SANDBOX') {
    throw new DomainError(
      'FAILED_PRECONDITION',
      `sandbox actions need a SANDBOX session; this one runs on ${hosted.engine}`,
    );
  }
  if (!(hosted.session instanceof SandboxSession)) {
    throw new DomainError('FAILED_PRECONDITION', 'this SANDBOX session has no sandbox controls');
  }
  return hosted.session.controls;
}
