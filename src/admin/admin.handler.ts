import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import {
  type AdminService,
  GetWorkerResponseSchema,
  ListWorkersResponseSchema,
} from '../../gen/switchboard/v1/admin_pb.js';
import type { FleetService } from '../fleet/fleet.service.js';
import { statusFromProto, workerToProto } from '../fleet/fleet.mapping.js';
import { decodePageToken, encodePageToken, normalisePageSize } from '../fleet/page-token.js';
import { WorkerRepository } from '../fleet/worker.repository.js';
import { DomainError } from '../platform/errors.js';
import { requestEntityManager } from '../transport/interceptors.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** AdminService: operators' view of the fleet. */
export function createAdminServiceHandler(fleet: FleetService): Partial<ServiceImpl<typeof AdminService>> {
  return {
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
