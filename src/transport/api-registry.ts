import { create, createFileRegistry } from '@bufbuild/protobuf';
import type { DescFile, FileRegistry } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { file_grpc_health_v1_health } from '../../gen/grpc/health/v1/health_pb.js';
import { file_grpc_reflection_v1_reflection } from '../../gen/grpc/reflection/v1/reflection_pb.js';
import { file_grpc_reflection_v1alpha_reflection } from '../../gen/grpc/reflection/v1alpha/reflection_pb.js';
import { file_switchboard_v1_admin } from '../../gen/switchboard/v1/admin_pb.js';
import { file_switchboard_v1_api_key } from '../../gen/switchboard/v1/api_key_pb.js';
import { file_switchboard_v1_audit } from '../../gen/switchboard/v1/audit_pb.js';
import { file_switchboard_v1_auth } from '../../gen/switchboard/v1/auth_pb.js';
import { file_switchboard_v1_identity } from '../../gen/switchboard/v1/identity_pb.js';
import { file_switchboard_v1_member } from '../../gen/switchboard/v1/member_pb.js';
import { file_switchboard_v1_fleet } from '../../gen/switchboard/v1/fleet_pb.js';
import { file_switchboard_v1_worker } from '../../gen/switchboard/v1/worker_pb.js';
import { file_switchboard_v1_session } from '../../gen/switchboard/v1/session_pb.js';
import { file_switchboard_v1_message } from '../../gen/switchboard/v1/message_pb.js';
import { file_switchboard_v1_sandbox } from '../../gen/switchboard/v1/sandbox_pb.js';
import { file_switchboard_v1_event } from '../../gen/switchboard/v1/event_pb.js';

/**
 * Every .proto file the control plane serves, so server reflection can
 * describe our API, the standard gRPC services (itself included) and every
 * import they pull in.
 *
 * What reflection clients receive is `file.proto` of the descriptors that
 * protoc-gen-es embedded in gen/. protoc-gen-es strips `json_name`,
 * `dependency` and `source_code_info` before embedding; `fileDesc()` puts
 * back `dependency` (from the generated import list) and the json names of
 * message fields when gen/ loads. Checked byte for byte against `buf build
 * --exclude-source-info` for every file here: identical apart from buf's own
 * image bookkeeping field, options included. So nothing needs repairing; the
 * one loss is `source_code_info`, so clients see no comments. Worth
 * re-checking if a file gains top-level extensions with custom json names or
 * `import public`, which that restoration does not cover.
 *
 * google/protobuf/descriptor.proto is deliberately absent: protobuf-es
 * "boots" it without its options and reserved ranges, so it would be served
 * incomplete, and none of our files import it.
 */
export function createApiRegistry(): FileRegistry {
  return createRegistryOfFiles([
    file_switchboard_v1_fleet,
    file_switchboard_v1_worker,
    file_switchboard_v1_admin,
    file_switchboard_v1_identity,
    file_switchboard_v1_auth,
    file_switchboard_v1_api_key,
    file_switchboard_v1_member,
    file_switchboard_v1_audit,
    file_switchboard_v1_session,
    file_switchboard_v1_message,
    file_switchboard_v1_sandbox,
    file_switchboard_v1_event,
    file_grpc_health_v1_health,
    file_grpc_reflection_v1_reflection,
    file_grpc_reflection_v1alpha_reflection,
  ]);
}

/**
 * createFileRegistry() takes a FileDescriptorSet whose files come after their
 * imports, so we add the transitive imports of `roots` in dependency order.
 */
function createRegistryOfFiles(roots: readonly DescFile[]): FileRegistry {
  const ordered: DescFile[] = [];
  const seen = new Set<string>();
  const visit = (file: DescFile): void => {
    if (seen.has(file.proto.name)) return;
    seen.add(file.proto.name);
    file.dependencies.forEach(visit);
    ordered.push(file);
  };
  roots.forEach(visit);
  return createFileRegistry(
    create(FileDescriptorSetSchema, {
      file: ordered.map((file) => file.proto),
    }),
  );
}
