import { Code, ConnectError } from "@connectrpc/connect";
import { OptimisticLockError } from "@mikro-orm/core";
import { describe, expect, it } from "vitest";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { isUnexpected, statusOut, toConnectError } from "../../src/api/errors.ts";
import { DomainError } from "../../src/domain/errors.ts";

describe("error mapping", () => {
  it("turns an unexpected error into a bare INTERNAL without its message", () => {
    const error = toConnectError(new Error("password=hunter2 at db.internal:5432"));
    expect(error.code).toBe(Code.Internal);
    expect(error.rawMessage).toBe("internal error");
    expect(error.details).toEqual([]);
    expect(isUnexpected(new TypeError("x"))).toBe(true);
  });

  it("keeps domain errors' code, reason and field violations", () => {
    const error = toConnectError(
      new DomainError("invalid_argument", "DATA_NOT_VALID", "observation.y: bad", {
        violations: [{ field: "observation.y", description: "bad" }],
      }),
    );
    expect([error.code, error.rawMessage]).toEqual([Code.InvalidArgument, "observation.y: bad"]);
    expect(error.findDetails(ErrorInfoSchema)[0]).toMatchObject({ reason: "DATA_NOT_VALID", domain: "posterior" });
    expect(error.findDetails(BadRequestSchema)[0]?.fieldViolations[0]).toMatchObject({ field: "observation.y" });
    expect(isUnexpected(error)).toBe(false);
  });

  it("reports a lost optimistic lock as ABORTED and passes ConnectErrors through", () => {
    expect(toConnectError(new OptimisticLockError("stale")).code).toBe(Code.Aborted);
    const own = new ConnectError("nope", Code.Unimplemented);
    expect(toConnectError(own)).toBe(own);
  });

  it("builds the google.rpc.Status of a batch row with packed details", () => {
    const status = statusOut(new DomainError("not_found", "INSTANCE_NOT_FOUND", "instance \"x\" not found"));
    expect([status.code, status.message]).toEqual([Code.NotFound, 'instance "x" not found']);
    expect(status.details?.[0]?.typeUrl).toBe("type.googleapis.com/google.rpc.ErrorInfo");
  });
});
