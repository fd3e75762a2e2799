import type { DescMessage, Message } from '@bufbuild/protobuf';
import { reflect, type ReflectMessage } from '@bufbuild/protobuf/reflect';
import type { Interceptor } from '@connectrpc/connect';
import { createValidator, type Validator } from '@bufbuild/protovalidate';
import { DomainError } from '../platform/errors.js';

/**
 * Checks every request message against the protovalidate rules declared in
 * proto/ before any handler runs, so invalid input changes nothing. A
 * violation is INVALID_ARGUMENT naming the field path.
 */
export function createValidationInterceptor(validator: Validator = createValidator()): Interceptor {
  const check = (schema: DescMessage, message: Message) => {
    const nul = findNulCharacter(reflect(schema, message));
    if (nul) {
      // PostgreSQL text cannot hold NUL; refusing here keeps it a caller error, not a database one.
      throw DomainError.invalidArgument(nul, 'must not contain NUL characters');
    }
    const result = validator.validate(schema, message);
    if (result.kind === 'valid') return;
    if (result.kind === 'error') throw result.error;
    const [first] = result.violations;
    const field = first ? (first.toString().split(':')[0] ?? '') : '';
    throw new DomainError('INVALID_ARGUMENT', result.violations.map((v) => v.toString()).join('; '), {
      details: { field },
    });
  };
  return (next) => async (req) => {
    if (!req.stream) {
      check(req.method.input, req.message);
      return next(req);
    }
    const schema = req.method.input;
    const messages = req.message;
    return next({
      ...req,
      message: (async function* () {
        for await (const message of messages) {
          check(schema, message);
          yield message;
        }
      })(),
    });
  };
}

/** The path of the first string field (at any depth) that contains a NUL character. */
function findNulCharacter(message: ReflectMessage, prefix = ''): string | undefined {
  for (const field of message.fields) {
    if (!message.isSet(field)) continue;
    const path = `${prefix}${field.name}`;
    switch (field.fieldKind) {
      case 'scalar': {
        const value = message.get(field);
        if (typeof value === 'string' && value.includes('\u0000')) return path;
        break;
      }
      case 'message': {
        const found = findNulCharacter(message.get(field), `${path}.`);
        if (found) return found;
        break;
      }
      case 'list':
        for (const item of message.get(field)) {
          if (typeof item === 'string' && item.includes('\u0000')) return path;
          if (typeof item === 'object' && item !== null && 'fields' in item) {
            const found = findNulCharacter(item as ReflectMessage, `${path}.`);
            if (found) return found;
          }
        }
        break;
      case 'map':
        for (const [key, value] of message.get(field)) {
          if (
            (typeof key === 'string' && key.includes('\u0000')) ||
            (typeof value === 'string' && value.includes('\u0000'))
          ) {
            return `${path}[${String(key)}]`;
          }
        }
        break;
      case 'enum':
        break;
    }
  }
  return undefined;
}
