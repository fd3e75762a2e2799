import { describe, expect, it } from 'vitest';
import { create, createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import type { FileRegistry, MessageInitShape } from '@bufbuild/protobuf';
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from '@bufbuild/protobuf/wkt';
import type { FileDescriptorProto } from '@bufbuild/protobuf/wkt';
import { Code, createClient, createRouterTransport } from '@connectrpc/connect';
import { ServerReflection as ServerReflectionV1 } from '../../gen/grpc/reflection/v1/reflection_pb.js';
import type {
  ServerReflectionRequestSchema,
  ServerReflectionResponse,
} from '../../gen/grpc/reflection/v1/reflection_pb.js';
import { ServerReflection as ServerReflectionV1alpha } from '../../gen/grpc/reflection/v1alpha/reflection_pb.js';
import { createApiRegistry } from '../../src/transport/api-registry.js';
import { registerReflection } from '../../src/transport/reflection.handler.js';

const SERVICES = [
  'switchboard.v1.AdminService',
  'switchboard.v1.WorkerService',
  'grpc.health.v1.Health',
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
];

type Request = MessageInitShape<typeof ServerReflectionRequestSchema>;

function transportFor(registry: FileRegistry, serviceNames: () => readonly string[] = () => SERVICES) {
  return createRouterTransport((router) => {
    registerReflection(router, registry, serviceNames);
  });
}

function v1Client(registry: FileRegistry = createApiRegistry(), serviceNames?: () => readonly string[]) {
  return createClient(ServerReflectionV1, transportFor(registry, serviceNames));
}

async function* fromArray<T>(items: readonly T[]): AsyncIterable<T> {
  yield* items;
}

/** Sends all requests on one stream and collects every response. */
async function converse(
  client: ReturnType<typeof v1Client>,
  requests: readonly Request[],
): Promise<ServerReflectionResponse[]> {
  const responses: ServerReflectionResponse[] = [];
  for await (const response of client.serverReflectionInfo(fromArray(requests))) {
    responses.push(response);
  }
  return responses;
}

async function ask(client: ReturnType<typeof v1Client>, request: Request): Promise<ServerReflectionResponse> {
  const responses = await converse(client, [request]);
  expect(responses).toHaveLength(1);
  return responses[0]!;
}

function decodeFiles(response: ServerReflectionResponse): FileDescriptorProto[] {
  if (response.messageResponse.case !== 'fileDescriptorResponse') {
    throw new Error(`expected files, got ${JSON.stringify(response.messageResponse)}`);
  }
  return response.messageResponse.value.fileDescriptorProto.map((bytes) =>
    fromBinary(FileDescriptorProtoSchema, bytes),
  );
}

/**
 * What a reflection client does: build the first file from nothing but the
 * files it was sent; throws if an import is missing. Files are ordered
 * imports-first by hand because createFileRegistry(proto, resolve) in
 * protobuf-es 2.13 adds a diamond import (worker.proto -> fleet.proto ->
 * timestamp.proto, and worker.proto -> timestamp.proto) too late.
 */
function resolveAsClient(files: readonly FileDescriptorProto[]): FileRegistry {
  const ordered: FileDescriptorProto[] = [];
  const visit = (name: string): void => {
    if (ordered.some((file) => file.name === name)) return;
    const file = files.find((candidate) => candidate.name === name);
    if (!file) throw new Error(`the response lacks ${name}`);
    file.dependency.forEach(visit);
    ordered.push(file);
  };
  const [first] = files;
  if (!first) throw new Error('no files');
  visit(first.name);
  return createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
}

function errorOf(response: ServerReflectionResponse): {
  code: number;
  message: string;
} {
  if (response.messageResponse.case !== 'errorResponse') {
    throw new Error(`expected an error, got ${response.messageResponse.case ?? 'nothing'}`);
  }
  const { errorCode, errorMessage } = response.messageResponse.value;
  return { code: errorCode, message: errorMessage };
}

describe('server reflection v1', () => {
  it('lists the service names it was given, read at call time', async () => {
    const names = ['switchboard.v1.AdminService'];
    const client = v1Client(createApiRegistry(), () => names);
    const before = await ask(client, {
      messageRequest: { case: 'listServices', value: '*' },
    });
    names.push('grpc.health.v1.Health');
    const after = await ask(client, {
      messageRequest: { case: 'listServices', value: '' },
    });

    const listed = (response: ServerReflectionResponse) =>
      response.messageResponse.case === 'listServicesResponse'
        ? response.messageResponse.value.service.map((service) => service.name)
        : [];
    expect(listed(before)).toEqual(['switchboard.v1.AdminService']);
    expect(listed(after)).toEqual(['switchboard.v1.AdminService', 'grpc.health.v1.Health']);
  });

  it('echoes the original request and the host', async () => {
    const response = await ask(v1Client(), {
      host: 'switchboard.internal',
      messageRequest: {
        case: 'fileContainingSymbol',
        value: 'switchboard.v1.Worker',
      },
    });
    expect(response.validHost).toBe('switchboard.internal');
    expect(response.originalRequest?.host).toBe('switchboard.internal');
    expect(response.originalRequest?.messageRequest).toEqual({
      case: 'fileContainingSymbol',
      value: 'switchboard.v1.Worker',
    });
  });

  it('describes a service with its file first and every import after it', async () => {
    const files = decodeFiles(
      await ask(v1Client(), {
        messageRequest: {
          case: 'fileContainingSymbol',
          value: 'switchboard.v1.AdminService',
        },
      }),
    );
    expect(files[0]?.name).toBe('switchboard/v1/admin.proto');
    expect(files.map((file) => file.name).sort()).toEqual([
      'buf/validate/validate.proto',
      'google/protobuf/descriptor.proto',
      'google/protobuf/duration.proto',
      'google/protobuf/field_mask.proto',
      'google/protobuf/timestamp.proto',
      'switchboard/v1/admin.proto',
      'switchboard/v1/fleet.proto',
      'switchboard/v1/identity.proto',
    ]);

    const resolved = resolveAsClient(files);
    expect(resolved.getService('switchboard.v1.AdminService')?.methods.map((m) => m.name)).toEqual([
      'ListWorkers',
      'GetWorker',
      'CreateJoinToken',
      'SetUserStatus',
      'CordonWorker',
      'UncordonWorker',
      'DrainWorker',
      'RemoveWorker',
      'ListWorkerEvents',
      'WatchWorkers',
      'GetFleetSummary',
      'SetMaintenance',
      'ShutdownWorker',
      'ReleaseReassignmentHold',
    ]);
    expect(resolved.getMessage('switchboard.v1.Worker')?.field['connectedSince']?.message?.typeName).toBe(
      'google.protobuf.Timestamp',
    );
  });

  it('sends json names, which protoc-gen-es strips from the embedded descriptors', async () => {
    const [worker] = decodeFiles(
      await ask(v1Client(), {
        messageRequest: {
          case: 'fileByFilename',
          value: 'switchboard/v1/worker.proto',
        },
      }),
    );
    const hello = worker?.messageType.find((message) => message.name === 'Hello');
    expect(hello?.field.map((field) => field.jsonName)).toEqual([
      'workerName',
      'agentVersion',
      'capacity',
      'supportedEngines',
      'labels',
      'instanceId',
      'workerId',
      'joinToken',
      'workerCredential',
      'heldSessions',
    ]);
  });

  it.each([
    ['a method', 'switchboard.v1.AdminService.ListWorkers', 'switchboard/v1/admin.proto'],
    ['a message', 'switchboard.v1.ListWorkersRequest', 'switchboard/v1/admin.proto'],
    ['a field', 'switchboard.v1.Worker.connected_since', 'switchboard/v1/fleet.proto'],
    ['a field inside a oneof', 'switchboard.v1.AgentMessage.hello', 'switchboard/v1/worker.proto'],
    ['a oneof', 'switchboard.v1.AgentMessage.payload', 'switchboard/v1/worker.proto'],
    ['a map entry', 'switchboard.v1.Worker.LabelsEntry', 'switchboard/v1/fleet.proto'],
    ['an enum', 'switchboard.v1.WorkerStatus', 'switchboard/v1/fleet.proto'],
    ['an enum value (sibling scope)', 'switchboard.v1.WORKER_STATUS_ONLINE', 'switchboard/v1/fleet.proto'],
    ['a nested enum', 'grpc.health.v1.HealthCheckResponse.ServingStatus', 'grpc/health/v1/health.proto'],
    ['a well-known type', 'google.protobuf.Duration', 'google/protobuf/duration.proto'],
  ])('finds the file declaring %s', async (_kind, symbol, fileName) => {
    const files = decodeFiles(
      await ask(v1Client(), {
        messageRequest: { case: 'fileContainingSymbol', value: symbol },
      }),
    );
    expect(files[0]?.name).toBe(fileName);
    expect(() => resolveAsClient(files)).not.toThrow();
  });

  it('describes itself, including the bidirectional stream', async () => {
    const files = decodeFiles(
      await ask(v1Client(), {
        messageRequest: {
          case: 'fileContainingSymbol',
          value: 'grpc.reflection.v1.ServerReflection',
        },
      }),
    );
    expect(files.map((file) => file.name)).toEqual(['grpc/reflection/v1/reflection.proto']);
    const method = resolveAsClient(files).getService('grpc.reflection.v1.ServerReflection')?.method[
      'serverReflectionInfo'
    ];
    expect(method?.methodKind).toBe('bidi_streaming');
  });

  it('can describe every service it lists', async () => {
    const client = v1Client();
    for (const service of SERVICES) {
      const files = decodeFiles(
        await ask(client, {
          messageRequest: { case: 'fileContainingSymbol', value: service },
        }),
      );
      expect(resolveAsClient(files).getService(service)?.typeName).toBe(service);
    }
  });

  it('answers an unknown name with NOT_FOUND and keeps the stream open', async () => {
    const responses = await converse(v1Client(), [
      {
        messageRequest: {
          case: 'fileContainingSymbol',
          value: 'switchboard.v1.NoSuchThing',
        },
      },
      {
        messageRequest: {
          case: 'fileContainingSymbol',
          value: 'switchboard.v1.AdminService.NoSuchMethod',
        },
      },
      {
        messageRequest: {
          case: 'fileByFilename',
          value: 'switchboard/v1/nope.proto',
        },
      },
      {
        messageRequest: {
          case: 'allExtensionNumbersOfType',
          value: 'switchboard.v1.Nope',
        },
      },
      { messageRequest: { case: 'listServices', value: '' } },
    ]);
    expect(responses.slice(0, 4).map((response) => errorOf(response).code)).toEqual([
      Code.NotFound,
      Code.NotFound,
      Code.NotFound,
      Code.NotFound,
    ]);
    expect(errorOf(responses[0]!).message).toContain('switchboard.v1.NoSuchThing');
    expect(responses[4]?.messageResponse.case).toBe('listServicesResponse');
  });

  it('answers a request without a question with INVALID_ARGUMENT', async () => {
    const response = await ask(v1Client(), {});
    expect(errorOf(response).code).toBe(Code.InvalidArgument);
  });

  it('reports no extension numbers for a message nobody extends', async () => {
    const response = await ask(v1Client(), {
      messageRequest: {
        case: 'allExtensionNumbersOfType',
        value: 'switchboard.v1.Worker',
      },
    });
    expect(response.messageResponse).toEqual({
      case: 'allExtensionNumbersResponse',
      value: expect.objectContaining({
        baseTypeName: 'switchboard.v1.Worker',
        extensionNumber: [],
      }),
    });
  });
});

describe('server reflection of extensions', () => {
  // Our API declares no extensions, so a small proto2 pair stands in for one.
  const base = create(FileDescriptorProtoSchema, {
    name: 'test/base.proto',
    package: 'test',
    syntax: 'proto2',
    messageType: [{ name: 'Base', extensionRange: [{ start: 100, end: 200 }] }],
  });
  const ext = create(FileDescriptorProtoSchema, {
    name: 'test/ext.proto',
    package: 'test',
    syntax: 'proto2',
    dependency: ['test/base.proto'],
    extension: [
      {
        name: 'tag',
        number: 100,
        label: FieldDescriptorProto_Label.OPTIONAL,
        type: FieldDescriptorProto_Type.STRING,
        extendee: '.test.Base',
        jsonName: 'tag',
      },
    ],
  });
  const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: [base, ext] }));

  it('finds the file declaring an extension by extendee and number', async () => {
    const files = decodeFiles(
      await ask(v1Client(registry), {
        messageRequest: {
          case: 'fileContainingExtension',
          value: { containingType: 'test.Base', extensionNumber: 100 },
        },
      }),
    );
    expect(files.map((file) => file.name)).toEqual(['test/ext.proto', 'test/base.proto']);
  });

  it('finds an extension by its symbol', async () => {
    const files = decodeFiles(
      await ask(v1Client(registry), {
        messageRequest: { case: 'fileContainingSymbol', value: 'test.tag' },
      }),
    );
    expect(files[0]?.name).toBe('test/ext.proto');
  });

  it('lists the extension numbers of a message', async () => {
    const response = await ask(v1Client(registry), {
      messageRequest: { case: 'allExtensionNumbersOfType', value: 'test.Base' },
    });
    expect(response.messageResponse).toEqual({
      case: 'allExtensionNumbersResponse',
      value: expect.objectContaining({
        baseTypeName: 'test.Base',
        extensionNumber: [100],
      }),
    });
  });

  it('answers an unknown extension number with NOT_FOUND', async () => {
    const response = await ask(v1Client(registry), {
      messageRequest: {
        case: 'fileContainingExtension',
        value: { containingType: 'test.Base', extensionNumber: 101 },
      },
    });
    expect(errorOf(response).code).toBe(Code.NotFound);
  });
});

describe('server reflection v1alpha', () => {
  const client = createClient(ServerReflectionV1alpha, transportFor(createApiRegistry()));

  it('answers with the same files and echoes the v1alpha request', async () => {
    const request = create(
      // The v1alpha request schema, reached through the service, to prove the
      // echo keeps the v1alpha type rather than borrowing v1's.
      ServerReflectionV1alpha.method.serverReflectionInfo.input,
      {
        messageRequest: {
          case: 'fileContainingSymbol',
          value: 'switchboard.v1.AdminService.GetWorker',
        },
      },
    );
    const responses = [];
    for await (const response of client.serverReflectionInfo(fromArray([request]))) {
      responses.push(response);
    }
    const [response] = responses;
    expect(response?.$typeName).toBe('grpc.reflection.v1alpha.ServerReflectionResponse');
    expect(response?.originalRequest?.$typeName).toBe('grpc.reflection.v1alpha.ServerReflectionRequest');
    if (response?.messageResponse.case !== 'fileDescriptorResponse') throw new Error('expected files');
    const names = response.messageResponse.value.fileDescriptorProto.map(
      (bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name,
    );
    expect(names[0]).toBe('switchboard/v1/admin.proto');
    expect(names).toContain('google/protobuf/timestamp.proto');
  });

  it('answers an unknown symbol with NOT_FOUND', async () => {
    const responses = [];
    for await (const response of client.serverReflectionInfo(
      fromArray([
        {
          messageRequest: {
            case: 'fileContainingSymbol' as const,
            value: 'nope.Nope',
          },
        },
      ]),
    )) {
      responses.push(response);
    }
    expect(responses[0]?.messageResponse).toEqual({
      case: 'errorResponse',
      value: expect.objectContaining({ errorCode: Code.NotFound }),
    });
  });
});
