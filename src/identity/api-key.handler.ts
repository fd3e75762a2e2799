import { create } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import {
  type ApiKeyService as ApiKeyServiceDesc,
  CreateApiKeyResponseSchema,
  ListApiKeysResponseSchema,
  RevokeApiKeyResponseSchema,
} from '../../gen/switchboard/v1/api_key_pb.js';
import { decodePageToken, encodePageToken, normalisePageSize } from '../fleet/page-token.js';
import { requirePrincipal } from '../transport/auth.interceptor.js';
import { originKey } from '../transport/context.js';
import { requestEntityManager } from '../transport/interceptors.js';
import type { ApiKeyService } from './api-key.service.js';
import { apiKeyToProto, tenantRoleFromProto } from './identity-mapping.handler.js';

const origin = (ctx: HandlerContext) => ctx.values.get(originKey);

/** ApiKeyService: protobuf <-> ApiKeyService use cases; every RPC, so a new one fails to compile until served. */
export function createApiKeyHandler(apiKeys: ApiKeyService): ServiceImpl<typeof ApiKeyServiceDesc> {
  return {
    async createApiKey(req, ctx) {
      const result = await apiKeys.create(
        requestEntityManager(ctx),
        requirePrincipal(ctx),
        {
          name: req.name,
          role: tenantRoleFromProto(req.role),
          expiresAt: req.expiresAt ? timestampDate(req.expiresAt) : null,
        },
        origin(ctx),
      );
      return create(CreateApiKeyResponseSchema, { apiKey: apiKeyToProto(result.apiKey), secret: result.secret });
    },
    async listApiKeys(req, ctx) {
      const pageSize = normalisePageSize(req.pageSize, { default: 100, max: 1000 });
      const keys = await apiKeys.list(requestEntityManager(ctx), requirePrincipal(ctx), {
        pageSize: pageSize + 1,
        afterId: decodePageToken(req.pageToken),
        includeInactive: req.includeInactive,
      });
      const page = keys.slice(0, pageSize);
      const last = page.at(-1);
      return create(ListApiKeysResponseSchema, {
        apiKeys: page.map(apiKeyToProto),
        nextPageToken: keys.length > pageSize && last ? encodePageToken(last.id) : '',
      });
    },
    async revokeApiKey(req, ctx) {
      const key = await apiKeys.revoke(requestEntityManager(ctx), requirePrincipal(ctx), req.apiKeyId, origin(ctx));
      return create(RevokeApiKeyResponseSchema, { apiKey: apiKeyToProto(key) });
    },
  };
}
