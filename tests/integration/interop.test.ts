import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { RawAgentStream } from '../support/raw-stream.js';

const protoRoot = fileURLToPath(new URL('../../proto', import.meta.url));

/** What @grpc/proto-loader produces for ControlMessage (plain objects, oneof name set). */
interface LoadedControlMessage {
  correlationId: string;
  payload: 'welcome' | 'heartbeatAck';
  welcome?: { workerId: string; heartbeatInterval?: { seconds: string } };
  heartbeatAck?: { sequence: string };
}

describe('WorkerService.Connect interoperates with independent gRPC clients', () => {
  let cp: TestControlPlane;
  beforeAll(async () => {
    cp = await startControlPlane();
  });
  afterAll(async () => {
    await cp?.close();
  });

  it('holds the bidi stream with a stock @grpc/grpc-js client built from the .proto files', async () => {
    // No generated code of ours: proto-loader parses proto/ at run time, as any
    // third-party gRPC SDK would.
    const definition = protoLoader.loadSync('switchboard/v1/worker.proto', {
      includeDirs: [protoRoot],
      longs: String,
      enums: String,
      defaults: false,
      oneofs: true,
    });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as {
      switchboard: { v1: { WorkerService: grpc.ServiceClientConstructor } };
    };
    const client = new loaded.switchboard.v1.WorkerService(cp.grpcAddress, grpc.credentials.createInsecure());
    const call = (client as unknown as { connect(): grpc.ClientDuplexStream<unknown, LoadedControlMessage> }).connect();
    const received: LoadedControlMessage[] = [];
    const gotTwo = new Promise<void>((resolve, reject) => {
      call.on('data', (message: LoadedControlMessage) => {
        received.push(message);
        if (message.payload === 'welcome') {
          call.write({
            correlationId: 'hb-1',
            heartbeat: { sequence: '7', metrics: { rssBytes: '5000000', cpuCount: 2 } },
          });
        }
        if (received.length === 2) resolve();
      });
      call.on('error', reject);
    });
    call.write({
      correlationId: 'hello-1',
      hello: {
        workerName: 'stock-grpc-js',
        agentVersion: 'proto-loader',
        capacity: 5,
        supportedEngines: ['ENGINE_SANDBOX'],
        instanceId: 'stock-grpc-js-instance',
        joinToken: await cp.joinToken(),
      },
    });
    await gotTwo;
    expect(received[0]?.payload).toBe('welcome');
    expect(received[0]?.welcome?.workerId).toMatch(/^[0-9a-f-]{36}$/);
    expect(received[0]?.correlationId).toBe('hello-1');
    expect(received[1]?.payload).toBe('heartbeatAck');
    expect(received[1]?.heartbeatAck?.sequence).toBe('7');
    expect(received[1]?.correlationId).toBe('hb-1');
    const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.end();
    expect((await ended).code).toBe(grpc.status.OK);
    client.close();
  });

  it('holds the bidi stream with a connect-node gRPC client', async () => {
    const stream = new RawAgentStream(cp.grpcUrl, await cp.joinToken());
    stream.hello('connect-node-client');
    const welcome = await stream.next();
    expect(welcome.payload.case).toBe('welcome');
    expect(welcome.correlationId).toBe('c-1');
    for (let sequence = 1n; sequence <= 3n; sequence++) {
      stream.heartbeat(sequence);
      const ack = await stream.next();
      expect(ack.payload.case === 'heartbeatAck' && ack.payload.value.sequence).toBe(sequence);
    }
    stream.end();
  });
});
