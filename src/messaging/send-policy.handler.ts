import type { ServiceImpl } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import {
  GetSendPolicyResponseSchema,
  SendPolicySchema,
  SetSendPolicyResponseSchema,
  type MessageService as MessageServiceDesc,
  type SendPolicy as SendPolicyProto,
} from '../../gen/switchboard/v1/message_pb.js';
import { requirePrincipal } from '../transport/auth.interceptor.js';
import { originKey } from '../transport/context.js';
import { requestEntityManager } from '../transport/interceptors.js';
import type { SendPolicy } from './send-policy.js';
import type { SendPolicyService } from './send-policy.service.js';

function policyToProto(policy: SendPolicy): SendPolicyProto {
  return create(SendPolicySchema, policy);
}

function policyFromProto(policy: SendPolicyProto | undefined): SendPolicy {
  // protovalidate already refused a missing policy; absent here only in theory.
  return {
    perMinute: policy?.perMinute ?? 0,
    perDay: policy?.perDay ?? 0,
    newRecipientIntervalSeconds: policy?.newRecipientIntervalSeconds ?? 0,
    newRecipientBurst: policy?.newRecipientBurst ?? 0,
    warmupDays: policy?.warmupDays ?? 0,
    jitterMs: policy?.jitterMs ?? 0,
  };
}

/**
 * GetSendPolicy and SetSendPolicy, spread into the MessageService handler
 * next to the message RPCs (protobuf <-> domain only).
 */
export function createSendPolicyHandlers(
  policies: SendPolicyService,
): Pick<ServiceImpl<typeof MessageServiceDesc>, 'getSendPolicy' | 'setSendPolicy'> {
  return {
    async getSendPolicy(req, ctx) {
      const view = await policies.get(requestEntityManager(ctx), requirePrincipal(ctx), req.sessionId);
      return create(GetSendPolicyResponseSchema, {
        policy: policyToProto(view.policy),
        planLimits: policyToProto(view.limits),
      });
    },
    async setSendPolicy(req, ctx) {
      const policy = await policies.set(
        requestEntityManager(ctx),
        requirePrincipal(ctx),
        req.sessionId,
        policyFromProto(req.policy),
        ctx.values.get(originKey),
      );
      return create(SetSendPolicyResponseSchema, { policy: policyToProto(policy) });
    },
  };
}
