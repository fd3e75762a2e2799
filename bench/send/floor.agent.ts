/**
 * The floor's agent: the cheapest worker that speaks WorkerService.Connect
 * over the agent's own transport (agent/control-plane-client.ts: grpc-js,
 * protobuf-es). It says Hello and answers every Request with a Response
 * carrying a fresh WhatsApp-style message id, at once: no session host, no
 * engine, no receipts, no heartbeats. Takes the real agent's flags (only
 * --control-plane and --name matter), so the bench starts it the same way.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { create } from '@bufbuild/protobuf';
import { ControlPlaneClient } from '../../agent/control-plane-client.js';
import { Engine } from '../../gen/switchboard/v1/fleet_pb.js';
import { AgentMessageSchema, type ControlMessage } from '../../gen/switchboard/v1/worker_pb.js';

const { values } = parseArgs({
  options: { 'control-plane': { type: 'string' }, name: { type: 'string' } },
  strict: false,
});
const address = typeof values['control-plane'] === 'string' ? values['control-plane'] : 'localhost:50051';
const name = typeof values.name === 'string' ? values.name : 'floor-agent';

const client = new ControlPlaneClient(address, { keepaliveTimeMs: 20_000, keepaliveTimeoutMs: 10_000 });
const stream = client.openStream();
let stopping = false;

stream.on('data', (message: ControlMessage) => {
  if (message.payload.case !== 'request') return;
  // The same id format as the sandbox engine's webMessageId: 3EB0 and 16 hex digits.
  const messageId = `3EB0${randomBytes(8).toString('hex').toUpperCase()}`;
  stream.write(
    create(AgentMessageSchema, {
      correlationId: message.correlationId,
      payload: { case: 'response', value: { result: { case: 'messageId', value: messageId } } },
    }),
  );
});
const ended = (why: string) => {
  if (stopping) return;
  process.stderr.write(`${name}: stream ended (${why})\n`);
  process.exit(1);
};
stream.on('error', (error: Error) => ended(error.message));
stream.on('end', () => ended('closed by the server'));

stream.write(
  create(AgentMessageSchema, {
    correlationId: randomUUID(),
    payload: {
      case: 'hello',
      value: { workerName: name, agentVersion: 'floor', capacity: 100_000, supportedEngines: [Engine.SANDBOX] },
    },
  }),
);

const stop = (code: number) => {
  stopping = true;
  stream.end();
  client.close();
  process.exit(code);
};
process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));
// Started with an IPC channel: the bench died without stopping us.
process.on('disconnect', () => stop(1));
