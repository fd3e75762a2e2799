import type { DescMessage, Message } from '@bufbuild/protobuf';
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
