import { Code, ConnectError } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { AsyncQueue } from '../../src/platform/async-queue.js';
import { DomainError, type DomainErrorCode } from '../../lib/errors.js';
import { toConnectError } from '../../src/transport/error-mapping.js';

describe('error mapping', () => {
  it.each<[DomainErrorCode, Code]>([
    ['INVALID_ARGUMENT', Code.InvalidArgument],
    ['NOT_FOUND', Code.NotFound],
    ['ALREADY_EXISTS', Code.AlreadyExists],
    ['FAILED_PRECONDITION', Code.FailedPrecondition],
    ['PERMISSION_DENIED', Code.PermissionDenied],
    ['UNAUTHENTICATED', Code.Unauthenticated],
    ['RESOURCE_EXHAUSTED', Code.ResourceExhausted],
    ['UNAVAILABLE', Code.Unavailable],
    ['DEADLINE_EXCEEDED', Code.DeadlineExceeded],
    ['ABORTED', Code.Aborted],
    ['INTERNAL', Code.Internal],
  ])('maps %s to the Connect code', (domain, connect) => {
    const { error, unexpected } = toConnectError(new DomainError(domain, 'msg'), 'req-1');
    expect(error.code).toBe(connect);
    expect(error.rawMessage).toBe('msg');
    expect(unexpected).toBe(false);
  });

  it('hides the message of unexpected errors behind the request id', () => {
    const { error, unexpected } = toConnectError(new Error('password=hunter2 at db.ts:12'), 'req-9');
    expect(error.code).toBe(Code.Internal);
    expect(error.rawMessage).toBe('internal error (request id req-9)');
    expect(unexpected).toBe(true);
  });

  it('passes protocol errors raised by Connect through', () => {
    const original = new ConnectError('bad frame', Code.InvalidArgument);
    expect(toConnectError(original, 'r').error).toBe(original);
  });

  it('carries the invalid field as metadata', () => {
    const { error } = toConnectError(DomainError.invalidArgument('hello.capacity', 'too big'), 'r');
    expect(error.metadata.get('x-error-field')).toBe('hello.capacity');
  });
});

describe('AsyncQueue', () => {
  it('yields pushed items in order and ends on close', async () => {
    const queue = new AsyncQueue<number>();
    queue.push(1);
    queue.push(2);
    setTimeout(() => {
      queue.push(3);
      queue.close();
    }, 5);
    const seen: number[] = [];
    for await (const item of queue) seen.push(item);
    expect(seen).toEqual([1, 2, 3]);
    expect(queue.push(4)).toBe(false);
  });

  it('drains queued items, then throws the closing error', async () => {
    const queue = new AsyncQueue<string>();
    queue.push('a');
    queue.close(new Error('boom'));
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const item of queue) seen.push(item);
      })(),
    ).rejects.toThrow('boom');
    expect(seen).toEqual(['a']);
  });
});
