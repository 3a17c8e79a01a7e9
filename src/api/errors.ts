import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { OptimisticLockError } from "@mikro-orm/core";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import type { StatusSchema } from "../../gen/google/rpc/status_pb.ts";
import { DomainError, type ErrorStatus } from "../domain/errors.ts";

export const ERROR_DOMAIN = "posterior";

const codes: Record<ErrorStatus, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  unimplemented: Code.Unimplemented,
  aborted: Code.Aborted,
};

/** Every error leaves as a ConnectError; anything unexpected becomes a bare INTERNAL. */
export function toConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof DomainError) {
    const details: ConstructorParameters<typeof ConnectError>[3] = [
      { desc: ErrorInfoSchema, value: { reason: error.reason, domain: ERROR_DOMAIN, metadata: error.metadata } },
    ];
    if (error.violations.length > 0) {
      details.push({ desc: BadRequestSchema, value: { fieldViolations: error.violations.map((v) => ({ ...v })) } });
    }
    return new ConnectError(error.message, codes[error.status], undefined, details);
  }
  if (error instanceof OptimisticLockError) {
    return new ConnectError("the instance was changed concurrently; retry", Code.Aborted, undefined, [
      { desc: ErrorInfoSchema, value: { reason: "CONCURRENT_MODIFICATION", domain: ERROR_DOMAIN } },
    ]);
  }
  return new ConnectError("internal error", Code.Internal);
}

export const isUnexpected = (error: unknown) => toConnectError(error).code === Code.Internal && !(error instanceof ConnectError);

/** The google.rpc.Status a unary call would have carried, for per-row errors. */
export function statusOut(error: unknown): MessageInitShape<typeof StatusSchema> {
  const e = toConnectError(error);
  return {
    code: e.code,
    message: e.rawMessage,
    details: e.details.map((d) => ("desc" in d ? anyPack(d.desc, create(d.desc, d.value)) : { typeUrl: `type.googleapis.com/${d.type}`, value: d.value })),
  };
}
