import { NotPositiveDefiniteError } from "../math/linalg.ts";
import type { Violation } from "../models/validation.ts";

// What went wrong, in domain terms; the API layer maps `status` to a gRPC code.
export type ErrorStatus =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "resource_exhausted"
  | "unimplemented"
  | "aborted"
  | "permission_denied";

export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

export class DomainError extends Error {
  readonly status: ErrorStatus;
  /** Machine-readable reason, e.g. INSTANCE_NOT_FOUND; sent as google.rpc.ErrorInfo. */
  readonly reason: string;
  readonly violations: readonly FieldViolation[];
  readonly metadata: Readonly<Record<string, string>>;

  constructor(
    status: ErrorStatus,
    reason: string,
    message: string,
    details: { violations?: readonly FieldViolation[]; metadata?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = "DomainError";
    this.status = status;
    this.reason = reason;
    this.violations = details.violations ?? [];
    this.metadata = details.metadata ?? {};
  }
}

export const notFound = (what: "MODEL" | "INSTANCE" | "EPISODE" | "RUN", key: string, id: string) =>
  new DomainError("not_found", `${what}_NOT_FOUND`, `${what.toLowerCase()} ${JSON.stringify(id)} not found`, {
    metadata: { [key]: id },
  });

export const invalidRequest = (field: string, description: string) =>
  new DomainError("invalid_argument", "INVALID_REQUEST", `${field}: ${description}`, {
    violations: [{ field, description }],
  });

/** One error for all violations, with the reason of the first. */
export function invalidData(violations: readonly Violation[]): DomainError {
  const first = violations[0]!;
  const more = violations.length > 1 ? ` (and ${violations.length - 1} more)` : "";
  return new DomainError("invalid_argument", first.reason, `${first.field}: ${first.description}${more}`, {
    violations: violations.map(({ field, description }) => ({ field, description })),
  });
}

/**
 * Runs a model function, turning a numerical breakdown (e.g. a posterior that is no longer
 * positive definite after degenerate data such as a perfect fit) into a clear client error.
 */
export function numerically<T>(what: "inference" | "learning", compute: () => T): T {
  try {
    return compute();
  } catch (error) {
    if (!(error instanceof NotPositiveDefiniteError)) throw error;
    throw new DomainError(
      "failed_precondition",
      "NUMERICAL_FAILURE",
      `${what} failed: ${error.message}; the data may be degenerate (for example identical inputs fitted exactly)`,
    );
  }
}
