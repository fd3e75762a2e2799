import { getOption } from '@bufbuild/protobuf';
import { reflect, type ReflectMessage } from '@bufbuild/protobuf/reflect';
import { createValidator, type Validator } from '@bufbuild/protovalidate';
import { field as fieldRules } from '@bufbuild/protovalidate/gen/buf/validate/validate_pb.js';
import { type AgentMessage, AgentMessageSchema } from '../gen/switchboard/v1/worker_pb.js';

/**
 * The control plane checks every envelope against worker.proto's rules as it
 * arrives and ends the stream on the first one that breaks them, cutting
 * every session on this worker off with it. So the agent checks first:
 * free text from WhatsApp or an engine (a message body, a push name, an
 * error detail) is fitted to its declared limit, and an envelope that still
 * breaks a rule is not sent (the caller logs it) rather than costing the
 * stream.
 */
export class OutboundCheck {
  constructor(private readonly validator: Validator = createValidator()) {}

  /**
   * Fits the envelope's free text in place (NUL characters removed, which
   * the control plane refuses in any string; cut to the field's max_len),
   * then checks it. Returns the violations left, or undefined when it may go.
   */
  prepare(message: AgentMessage): string | undefined {
    fitStrings(reflect(AgentMessageSchema, message));
    const result = this.validator.validate(AgentMessageSchema, message);
    switch (result.kind) {
      case 'valid':
        return undefined;
      case 'invalid':
        return result.violations.map((violation) => violation.toString()).join('; ');
      case 'error':
        return result.error.message;
    }
  }
}

/**
 * Fits every string field with a plain length limit. Fields whose value must
 * match a pattern, a list or a UUID are left alone: cutting them would not
 * make them valid, only wrong.
 */
function fitStrings(message: ReflectMessage): void {
  for (const field of message.fields) {
    if (!message.isSet(field)) continue;
    switch (field.fieldKind) {
      case 'scalar': {
        const value = message.get(field);
        if (typeof value !== 'string') break;
        const rules = getOption(field, fieldRules).type;
        // (Unset rules read as their zero value; a max_len of 0 is never declared.)
        const plain =
          rules.case === 'string' &&
          rules.value.maxLen > 0n &&
          rules.value.pattern === '' &&
          rules.value.in.length === 0 &&
          rules.value.wellKnown.case === undefined;
        const fitted = fit(value, plain ? Number(rules.value.maxLen) : Infinity);
        if (fitted !== value) message.set(field, fitted);
        break;
      }
      case 'message':
        fitStrings(message.get(field));
        break;
      case 'list':
        if (field.listKind === 'message') for (const item of message.get(field)) fitStrings(item as ReflectMessage);
        break;
      case 'map':
      case 'enum':
        break;
    }
  }
}

/** Without NUL characters and at most `maxChars` characters (code points, as protovalidate counts them). */
export function fit(text: string, maxChars: number): string {
  const clean = text.includes('\u0000') ? text.replaceAll('\u0000', '') : text;
  // Code points never outnumber UTF-16 units: only a long string needs counting.
  if (clean.length <= maxChars) return clean;
  const chars = Array.from(clean);
  return chars.length <= maxChars ? clean : chars.slice(0, maxChars).join('');
}
