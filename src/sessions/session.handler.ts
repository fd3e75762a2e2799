import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  CreateSessionResponseSchema,
  DeleteSessionResponseSchema,
  GetQrCodeResponseSchema,
  GetSessionResponseSchema,
  ListSessionsResponseSchema,
  LogoutSessionResponseSchema,
  RequestPairingCodeResponseSchema,
  RestartSessionResponseSchema,
  SessionSchema,
  SessionStatus as SessionStatusProto,
  StartSessionResponseSchema,
  StopSessionResponseSchema,
  WatchSessionResponseSchema,
  type SessionService as SessionServiceDesc,
} from '../../gen/switchboard/v1/session_pb.js';
import { Engine } from '../../gen/switchboard/v1/fleet_pb.js';
import { engineFromProto, engineToProto } from '../fleet/fleet-mapping.handler.js';
import { decodeTimeCursor, encodeTimeCursor, normalisePageSize } from '../fleet/page-token.js';
import { AsyncQueue } from '../platform/async-queue.js';
import { DomainError } from '../../lib/errors.js';
import { requirePrincipal } from '../transport/auth.interceptor.js';
import { requestEntityManager } from '../transport/interceptors.js';
import { originKey } from '../transport/context.js';
import { currentPrincipal } from '../transport/stream-guard.interceptor.js';
import { renderQr } from './qr-render.js';
import { maySeeQrCodes } from './qr-access.js';
import type { Session, SessionStatus } from './session.entity.js';
import type { SessionService } from './session.service.js';
import type { SessionChange, SessionWatch } from './session-watch.js';

const STATUS: Record<SessionStatus, SessionStatusProto> = {
  STOPPED: SessionStatusProto.STOPPED,
  PENDING: SessionStatusProto.PENDING,
  STARTING: SessionStatusProto.STARTING,
  SCAN_QR: SessionStatusProto.SCAN_QR,
  WORKING: SessionStatusProto.WORKING,
  FAILED: SessionStatusProto.FAILED,
  LOGGED_OUT: SessionStatusProto.LOGGED_OUT,
};

export function sessionStatusToProto(status: SessionStatus): SessionStatusProto {
  return STATUS[status];
}

function statusFromProto(status: SessionStatusProto): SessionStatus | undefined {
  if (status === SessionStatusProto.UNSPECIFIED) return undefined;
  const found = (Object.entries(STATUS) as [SessionStatus, SessionStatusProto][]).find(([, p]) => p === status);
  if (!found) throw DomainError.invalidArgument('status', 'unknown session status');
  return found[0];
}

export function sessionToProto(session: Session) {
  return create(SessionSchema, {
    id: session.id,
    name: session.name,
    engine: engineToProto(session.engine),
    status: STATUS[session.status],
    statusReason: session.statusReason,
    labelSelector: session.labelSelector,
    affinities: session.affinities,
    workerId: session.workerId ?? '',
    epoch: BigInt(session.epoch),
    account: session.account ?? undefined,
    createdAt: timestampFromDate(session.createdAt),
    updatedAt: timestampFromDate(session.updatedAt),
  });
}

/** SessionService: protobuf <-> domain only; rules live in SessionService (domain). */
export function createSessionHandler(
  sessions: SessionService,
  watch: SessionWatch,
): ServiceImpl<typeof SessionServiceDesc> {
  return { ...lifecycle(sessions), ...linking(sessions, watch) };
}

/** Creating, reading and the lifecycle commands. */
function lifecycle(sessions: SessionService) {
  const command = async (ctx: HandlerContext, id: string, kind: 'start' | 'stop' | 'restart' | 'logout' | 'delete') =>
    sessions.command(requestEntityManager(ctx), requirePrincipal(ctx), id, { kind }, ctx.values.get(originKey));
  return {
    async createSession(req, ctx) {
      const session = await sessions.create(
        requestEntityManager(ctx),
        requirePrincipal(ctx),
        {
          name: req.name,
          engine: req.engine === Engine.UNSPECIFIED ? undefined : engineFromProto(req.engine),
          labelSelector: req.labelSelector,
          affinities: req.affinities.map((a) => ({ labelSelector: a.labelSelector, weight: a.weight })),
        },
        ctx.values.get(originKey),
      );
      return create(CreateSessionResponseSchema, { session: sessionToProto(session) });
    },
    async getSession(req, ctx) {
      const session = await sessions.read(
        requestEntityManager(ctx),
        requirePrincipal(ctx),
        req.sessionId,
        ctx.values.get(originKey),
      );
      return create(GetSessionResponseSchema, { session: sessionToProto(session) });
    },
    async listSessions(req, ctx) {
      const pageSize = normalisePageSize(req.pageSize, { default: 100, max: 1000 });
      const cursor = decodeTimeCursor(req.pageToken);
      const found = await sessions.list(
        requestEntityManager(ctx),
        requirePrincipal(ctx),
        {
          pageSize: pageSize + 1,
          before: cursor ? { at: cursor.occurredAt, id: cursor.id } : undefined,
          status: statusFromProto(req.status),
          tenantId: req.tenantId || undefined,
        },
        ctx.values.get(originKey),
      );
      const page = found.slice(0, pageSize);
      const last = page.at(-1);
      return create(ListSessionsResponseSchema, {
        sessions: page.map(sessionToProto),
        nextPageToken:
          found.length > pageSize && last ? encodeTimeCursor({ occurredAt: last.createdAt, id: last.id }) : '',
      });
    },
    async startSession(req, ctx) {
      return create(StartSessionResponseSchema, {
        session: sessionToProto(await command(ctx, req.sessionId, 'start')),
      });
    },
    async stopSession(req, ctx) {
      return create(StopSessionResponseSchema, { session: sessionToProto(await command(ctx, req.sessionId, 'stop')) });
    },
    async restartSession(req, ctx) {
      return create(RestartSessionResponseSchema, {
        session: sessionToProto(await command(ctx, req.sessionId, 'restart')),
      });
    },
    async logoutSession(req, ctx) {
      return create(LogoutSessionResponseSchema, {
        session: sessionToProto(await command(ctx, req.sessionId, 'logout')),
      });
    },
    async deleteSession(req, ctx) {
      await command(ctx, req.sessionId, 'delete');
      return create(DeleteSessionResponseSchema, {});
    },
  } satisfies Partial<ServiceImpl<typeof SessionServiceDesc>>;
}

/** Linking an account: the QR code, the pairing code, and the live feed that carries fresh QR codes. */
function linking(sessions: SessionService, watch: SessionWatch) {
  return {
    async getQrCode(req, ctx) {
      const qr = await sessions.qrCode(requestEntityManager(ctx), requirePrincipal(ctx), req.sessionId);
      const rendered = await renderQr(qr.payload);
      return create(GetQrCodeResponseSchema, {
        payload: qr.payload,
        png: rendered.png,
        svg: rendered.svg,
        terminal: rendered.terminal,
        expiresAt: timestampFromDate(qr.expiresAt),
        sequence: qr.sequence,
      });
    },
    async requestPairingCode(req, ctx) {
      const result = await sessions.requestPairingCode(
        requestEntityManager(ctx),
        requirePrincipal(ctx),
        req.sessionId,
        req.phoneNumber,
      );
      return create(RequestPairingCodeResponseSchema, {
        code: result.code,
        expiresAt: timestampFromDate(result.expiresAt),
      });
    },
    async *watchSession(req, ctx) {
      // A QR code links an account: only those who may manage the session see it (as with
      // GetQrCode). Decided per frame from the caller as last re-checked, so a role that
      // loses the right stops receiving QR codes at once.
      const mayLink = async () => maySeeQrCodes(await currentPrincipal(ctx));
      // Subscribe before reading, so no change falls between the two.
      const changes = new AsyncQueue<SessionChange>();
      const stop = watch.watch(req.sessionId, (change) => changes.push(change));
      const end = () => changes.close();
      ctx.signal.addEventListener('abort', end, { once: true });
      try {
        const current = await sessions.get(requestEntityManager(ctx), await currentPrincipal(ctx), req.sessionId);
        const qr =
          current.status === 'SCAN_QR' && current.qrPayload && current.qrExpiresAt
            ? { payload: current.qrPayload, expiresAt: current.qrExpiresAt, sequence: current.qrSequence }
            : undefined;
        yield watchResponse({ session: current, qr: (await mayLink()) ? qr : undefined });
        for await (const change of changes) {
          if (change.deleted) return; // the session is gone: nothing more will come
          yield watchResponse({ session: change.session, qr: (await mayLink()) ? change.qr : undefined });
        }
      } finally {
        stop();
        ctx.signal.removeEventListener('abort', end);
      }
    },
  } satisfies Partial<ServiceImpl<typeof SessionServiceDesc>>;
}

function watchResponse(change: SessionChange) {
  return create(WatchSessionResponseSchema, {
    session: sessionToProto(change.session),
    qrCode: change.qr
      ? { payload: change.qr.payload, expiresAt: timestampFromDate(change.qr.expiresAt), sequence: change.qr.sequence }
      : undefined,
  });
}
