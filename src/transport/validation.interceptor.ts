import type { DescMessage, Message } from '@bufbuild/protobuf';
import { reflect, type ReflectMessage } from '@bufbuild/protobuf/reflect';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import { createValidator, type Validator, type Violation } from '@bufbuild/protovalidate';
import { DomainError } from '../../lib/errors.js';
import { undecodableMessage } from './undecodable.js';

/**
 * Checks every request message against the protovalidate rules declared in
 * proto/ before any handler runs, so invalid input changes nothing. A
 * violation is INVALID_ARGUMENT naming the field path.
 */
export function createValidationInterceptor(validator: Validator = createValidator()): Interceptor {
  const check = (schema: DescMessage, message: Message) => {
    const bad = findBadText(reflect(schema, message));
    if (bad) throw DomainError.invalidArgument(bad.path, bad.problem);
    const result = validator.validate(schema, message);
    if (result.kind === 'valid') return;
    if (result.kind === 'error') throw result.error;
    const [first] = result.violations;
    const field = first ? (first.toString().split(':')[0] ?? '') : '';
    throw new DomainError('INVALID_ARGUMENT', result.violations.map(describeViolation).join('; '), {
      details: { field },
    });
  };
  return (next) => async (req) => {
    if (!req.stream) {
      check(req.method.input, req.message);
      return next(req);
    }
    const schema = req.method.input;
    const messages = req.message[Symbol.asyncIterator]();
    return next({
      ...req,
      message: (async function* () {
        for (;;) {
          let next: IteratorResult<Message>;
          try {
            next = await messages.next();
          } catch (error) {
            throw undecodable(schema, error);
          }
          if (next.done) return;
          check(schema, next.value);
          yield next.value;
        }
      })(),
    });
  };
}

/**
 * A violation as the caller reads it. protovalidate names enum values by
 * number ("must be in list [1, 2]"), which means nothing to someone writing
 * JSON: enum rules name the values instead ("must be one of ENGINE_SANDBOX,
 * ENGINE_BAILEYS").
 */
function describeViolation(violation: Violation): string {
  const last = violation.field.at(-1);
  const values = last?.kind === 'field' && last.enum ? last.enum.values : undefined;
  if (!values || !violation.ruleId.startsWith('enum.')) return violation.toString();
  const path = violation.toString().split(':')[0] ?? '';
  const name = (n: string) => values.find((v) => v.number === Number(n))?.name ?? n;
  const listed = /\[([^\]]*)\]/.exec(violation.message)?.[1];
  const names = listed === undefined ? [] : listed.split(',').map((n) => name(n.trim()));
  switch (violation.ruleId) {
    case 'enum.in':
      return `${path}: must be one of ${names.join(', ')}`;
    case 'enum.not_in':
      return `${path}: must not be ${names.join(' or ')}`;
    case 'enum.defined_only':
      return `${path}: must be one of ${values
        .filter((v) => v.number !== 0)
        .map((v) => v.name)
        .join(', ')}`;
    default:
      return violation.toString();
  }
}

/**
 * A stream message Connect could not decode, as the caller should hear it
 * (see undecodable.ts): INVALID_ARGUMENT saying what could not be read.
 * (Unary requests are decoded before any interceptor: see request-refusals.ts.)
 */
function undecodable(schema: DescMessage, error: unknown): unknown {
  if (!(error instanceof ConnectError)) return error;
  const code = Code[error.code].replace(
    /[A-Z]/g,
    (letter, at: number) => `${at > 0 ? '_' : ''}${letter.toLowerCase()}`,
  );
  const message = undecodableMessage(schema.typeName, code, error.rawMessage);
  return message === undefined ? error : new DomainError('INVALID_ARGUMENT', message, { cause: error });
}

/**
 * Why a string cannot be stored as given, if it cannot. (Text that is not
 * Unicode never gets this far: binary decoding checks UTF-8, JSON decoding
 * refuses invalid UTF-8 and unpaired surrogates.)
 */
function textProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  // PostgreSQL text cannot hold NUL; refusing here keeps it a caller error, not a database one.
  if (value.includes('\u0000')) return 'must not contain NUL characters';
  return undefined;
}

/** The first string (at any depth) that cannot be stored as given, with why. */
function findBadText(message: ReflectMessage, prefix = ''): { path: string; problem: string } | undefined {
  for (const field of message.fields) {
    if (!message.isSet(field)) continue;
    const path = `${prefix}${field.name}`;
    switch (field.fieldKind) {
      case 'scalar': {
        const problem = textProblem(message.get(field));
        if (problem) return { path, problem };
        break;
      }
      case 'message': {
        const found = findBadText(message.get(field), `${path}.`);
        if (found) return found;
        break;
      }
      case 'list':
        for (const item of message.get(field)) {
          const problem = textProblem(item);
          if (problem) return { path, problem };
          if (typeof item === 'object' && item !== null && 'fields' in item) {
            const found = findBadText(item as ReflectMessage, `${path}.`);
            if (found) return found;
          }
        }
        break;
      case 'map':
        for (const [key, value] of message.get(field)) {
          const problem = textProblem(key) ?? textProblem(value);
          if (problem) return { path: `${path}[${String(key)}]`, problem };
          if (typeof value === 'object' && value !== null && 'fields' in value) {
            const found = findBadText(value as ReflectMessage, `${path}[${String(key)}].`);
            if (found) return found;
          }
        }
        break;
      case 'enum':
        break;
    }
  }
  return undefined;
}
