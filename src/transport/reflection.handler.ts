import { toBinary } from '@bufbuild/protobuf';
import type { DescExtension, DescFile, FileRegistry } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import type { DescriptorProto, EnumDescriptorProto } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import type { ConnectRouter } from '@connectrpc/connect';
import { ServerReflection as ServerReflectionV1 } from '../../gen/grpc/reflection/v1/reflection_pb.js';
import { ServerReflection as ServerReflectionV1alpha } from '../../gen/grpc/reflection/v1alpha/reflection_pb.js';

/**
 * Serves gRPC server reflection (https://github.com/grpc/grpc/blob/master/doc/server-reflection.md)
 * so grpcurl, buf curl and Postman can discover and call our services
 * without a copy of the .proto files.
 *
 * Both grpc.reflection.v1 and the older v1alpha are served because clients
 * still in the field only speak v1alpha. The two versions have the same
 * messages under different package names, so one implementation answers both.
 *
 * `serviceNames` is a function so list_services reports the services mounted
 * at the time of the call, not at the time of registration.
 */
export function registerReflection(
  router: ConnectRouter,
  registry: FileRegistry,
  serviceNames: () => readonly string[],
): void {
  const reflector = createReflector(registry, serviceNames);
  router.service(ServerReflectionV1, {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) {
        yield { ...reflector.answer(request), originalRequest: request };
      }
    },
  });
  router.service(ServerReflectionV1alpha, {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) {
        yield { ...reflector.answer(request), originalRequest: request };
      }
    },
  });
}

/** A reflection request as both protocol versions shape it, so one reflector serves both. */
interface ReflectionRequest {
  readonly host: string;
  readonly messageRequest:
    | { readonly case: 'fileByFilename'; readonly value: string }
    | { readonly case: 'fileContainingSymbol'; readonly value: string }
    | {
        readonly case: 'fileContainingExtension';
        readonly value: {
          readonly containingType: string;
          readonly extensionNumber: number;
        };
      }
    | { readonly case: 'allExtensionNumbersOfType'; readonly value: string }
    | { readonly case: 'listServices'; readonly value: string }
    | { readonly case: undefined; readonly value?: undefined };
}

/** A reflection response, minus original_request, that both versions' messages accept as init. */
interface ReflectionAnswer {
  validHost: string;
  messageResponse:
    | {
        case: 'fileDescriptorResponse';
        value: { fileDescriptorProto: Uint8Array[] };
      }
    | {
        case: 'allExtensionNumbersResponse';
        value: { baseTypeName: string; extensionNumber: number[] };
      }
    | { case: 'listServicesResponse'; value: { service: { name: string }[] } }
    | {
        case: 'errorResponse';
        value: { errorCode: number; errorMessage: string };
      };
}

/** Answers reflection requests from an immutable registry; indexes are built once. */
interface Reflector {
  answer(request: ReflectionRequest): ReflectionAnswer;
}

function createReflector(registry: FileRegistry, serviceNames: () => readonly string[]): Reflector {
  const fileOfSymbol = indexSymbols(registry);
  const extensionsOf = indexExtensions(registry);
  // Descriptors never change after start, so each file is serialised once.
  const encoded = new Map<DescFile, Uint8Array>();
  const encode = (file: DescFile): Uint8Array => {
    let bytes = encoded.get(file);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      encoded.set(file, bytes);
    }
    return bytes;
  };

  // The spec lets the server send the transitive imports along with the file,
  // and clients expect them: without them they cannot resolve the file's
  // types. The requested file goes first because grpcurl (jhump/protoreflect)
  // takes the first entry as the answer to a symbol lookup. We resend imports
  // on every request instead of tracking what this stream has already seen:
  // clients cache by file name, and the files are small.
  const files = (file: DescFile): ReflectionAnswer['messageResponse'] => ({
    case: 'fileDescriptorResponse',
    value: { fileDescriptorProto: withImports(file).map(encode) },
  });

  // NOT_FOUND goes in an error_response, not a stream error, so one bad
  // lookup does not end a session the client may still use for others.
  const error = (code: Code, message: string): ReflectionAnswer['messageResponse'] => ({
    case: 'errorResponse',
    value: { errorCode: code, errorMessage: message },
  });

  const respond = (request: ReflectionRequest['messageRequest']): ReflectionAnswer['messageResponse'] => {
    switch (request.case) {
      case 'listServices':
        // The request's value is unused: the spec says list_services lists all.
        return {
          case: 'listServicesResponse',
          value: { service: serviceNames().map((name) => ({ name })) },
        };
      case 'fileByFilename': {
        const file = registry.getFile(request.value);
        return file ? files(file) : error(Code.NotFound, `file not found: ${request.value}`);
      }
      case 'fileContainingSymbol': {
        const file = fileOfSymbol.get(request.value);
        return file ? files(file) : error(Code.NotFound, `symbol not found: ${request.value}`);
      }
      case 'fileContainingExtension': {
        const { containingType, extensionNumber } = request.value;
        const extendee = registry.getMessage(containingType);
        const extension = extendee && registry.getExtensionFor(extendee, extensionNumber);
        return extension
          ? files(extension.file)
          : error(Code.NotFound, `extension not found: ${containingType} field ${String(extensionNumber)}`);
      }
      case 'allExtensionNumbersOfType': {
        if (!registry.getMessage(request.value)) {
          return error(Code.NotFound, `message type not found: ${request.value}`);
        }
        const numbers = (extensionsOf.get(request.value) ?? []).map((ext) => ext.number);
        return {
          case: 'allExtensionNumbersResponse',
          value: { baseTypeName: request.value, extensionNumber: numbers },
        };
      }
      case undefined:
        // grpc-go ends the stream here; answering keeps the session usable
        // and still tells the client what it did wrong.
        return error(Code.InvalidArgument, 'reflection request has no message_request set');
    }
  };

  return {
    answer: (request) => ({
      // We serve every host the same way, so whatever host was asked for is valid.
      validHost: request.host,
      messageResponse: respond(request.messageRequest),
    }),
  };
}

/** The file followed by everything it imports, directly or not, each once. */
function withImports(root: DescFile): DescFile[] {
  const result: DescFile[] = [];
  const seen = new Set<string>();
  const visit = (file: DescFile): void => {
    if (seen.has(file.proto.name)) return;
    seen.add(file.proto.name);
    result.push(file);
    file.dependencies.forEach(visit);
  };
  visit(root);
  return result;
}

/**
 * Maps every fully-qualified name a client may ask file_containing_symbol
 * about to the file that declares it. The registry only looks up types, but
 * clients also ask for methods (grpcurl describes `pkg.Service.Method`),
 * fields, oneofs and enum values, and the registry hides map entry messages.
 * So the names come from the FileDescriptorProtos, following protobuf's own
 * scoping: an enum value is a sibling of its enum
 * (`switchboard.v1.WORKER_STATUS_ONLINE`), as in protoc and grpc-go.
 */
function indexSymbols(registry: FileRegistry): Map<string, DescFile> {
  const index = new Map<string, DescFile>();
  for (const file of registry.files) {
    const add = (scope: string, name: string): string => {
      const fullName = scope === '' ? name : `${scope}.${name}`;
      index.set(fullName, file);
      return fullName;
    };
    const addEnums = (scope: string, enums: readonly EnumDescriptorProto[]): void => {
      for (const enumType of enums) {
        add(scope, enumType.name);
        for (const value of enumType.value) add(scope, value.name);
      }
    };
    const addMessages = (scope: string, messages: readonly DescriptorProto[]): void => {
      for (const message of messages) {
        const name = add(scope, message.name);
        for (const member of [...message.field, ...message.extension, ...message.oneofDecl]) {
          add(name, member.name);
        }
        addEnums(name, message.enumType);
        addMessages(name, message.nestedType);
      }
    };
    const { proto } = file;
    addMessages(proto.package, proto.messageType);
    addEnums(proto.package, proto.enumType);
    for (const extension of proto.extension) add(proto.package, extension.name);
    for (const service of proto.service) {
      const name = add(proto.package, service.name);
      for (const method of service.method) add(name, method.name);
    }
  }
  return index;
}

/** Extensions by the message they extend, for all_extension_numbers_of_type. */
function indexExtensions(registry: FileRegistry): Map<string, DescExtension[]> {
  const index = new Map<string, DescExtension[]>();
  for (const type of registry) {
    if (type.kind !== 'extension') continue;
    const list = index.get(type.extendee.typeName) ?? [];
    list.push(type);
    index.set(type.extendee.typeName, list);
  }
  return index;
}
