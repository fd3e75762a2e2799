import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  type AdminService,
  CreateJoinTokenResponseSchema,
  GetWorkerResponseSchema,
  ListWorkersResponseSchema,
  SetUserStatusResponseSchema,
} from '../../gen/switchboard/v1/admin_pb.js';
import type { JoinTokenService } from '../fleet/join-token.service.js';
import type { AuthService } from '../identity/auth.service.js';
import { userStatusFromProto, userToProto } from '../identity/identity.mapping.js';
import { requirePrincipal } from '../transport/auth.interceptor.js';
import { originKey } from '../transport/context.js';
import type { FleetService } from '../fleet/fleet.service.js';
import { statusFromProto, workerToProto } from '../fleet/fleet.mapping.js';
import { decodePageToken, encodePageToken, normalisePageSize } from '../fleet/page-token.js';
import { WorkerRepository } from '../fleet/worker.repository.js';
import { DomainError } from '../platform/errors.js';
import { requestEntityManager } from '../transport/interceptors.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** AdminService: operators' view of the fleet. */
export function createAdminServiceHandler(deps: {
  fleet: FleetService;
  joinTokens: JoinTokenService;
  auth: AuthService;
}): Partial<ServiceImpl<typeof AdminService>> {
  const { fleet, joinTokens, auth } = deps;
  return {
    async createJoinToken(req, ctx: HandlerContext) {
      const { joinToken, token } = await joinTokens.create(
        requestEntityManager(ctx),
        requirePrincipal(ctx),
        {
          description: req.description,
          ttlMs: (req.ttlSeconds || 3600) * 1000,
          maxUses: req.maxUses || 1,
        },
        ctx.values.get(originKey),
      );
      return create(CreateJoinTokenResponseSchema, {
        joinTokenId: joinToken.id,
        token,
        expiresAt: timestampFromDate(joinToken.expiresAt),
        maxUses: joinToken.maxUses,
      });
    },

    async setUserStatus(req, ctx: HandlerContext) {
      const user = await auth.setUserStatus(
        requestEntityManager(ctx),
        requirePrincipal(ctx),
        { userId: req.userId, status: userStatusFromProto(req.status) },
        ctx.values.get(originKey),
      );
      return create(SetUserStatusResponseSchema, { user: userToProto(user) });
    },

    async listWorkers(req, ctx: HandlerContext) {
      const pageSize = normalisePageSize(req.pageSize, { default: 100, max: 1000 });
      const repository = new WorkerRepository(requestEntityManager(ctx));
      const workers = await fleet.listWorkers(repository, {
        status: statusFromProto(req.status),
        afterName: decodePageToken(req.pageToken),
        pageSize: pageSize + 1,
      });
      const page = workers.slice(0, pageSize);
      const last = page.at(-1);
      return create(ListWorkersResponseSchema, {
        workers: page.map(workerToProto),
        nextPageToken: workers.length > pageSize && last ? encodePageToken(last.name) : '',
      });
    },

    async getWorker(req, ctx: HandlerContext) {
      if (!UUID.test(req.workerId)) throw DomainError.invalidArgument('worker_id', 'must be a worker id (UUID)');
      const repository = new WorkerRepository(requestEntityManager(ctx));
      const worker = await fleet.getWorker(repository, req.workerId);
      return create(GetWorkerResponseSchema, { worker: workerToProto(worker) });
    },
  };
}
