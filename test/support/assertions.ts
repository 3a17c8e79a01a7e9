import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import type { ModelService } from "../../gen/posterior/v1/model_service_pb.ts";

/** The call fails with this code and ErrorInfo reason, naming `field` in its BadRequest detail if given. */
export async function expectFailure(call: Promise<unknown>, code: Code, reason: string, field?: string) {
  const error = await call.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  expect(error, "the call should have failed").toBeInstanceOf(ConnectError);
  expect(Code[error!.code]).toBe(Code[code]);
  expect(error!.findDetails(ErrorInfoSchema)[0]?.reason).toBe(reason);
  if (field) {
    expect(error!.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field)).toContain(field);
  }
  return error!;
}

/** Each set of arguments is refused at instance creation, naming its (first) argument. */
export async function expectArgumentsRejected(
  models: Client<typeof ModelService>,
  model: string,
  cases: ReadonlyArray<Record<string, number>>,
) {
  for (const args of cases) {
    await expectFailure(models.createInstance({ model, arguments: args }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", `arguments.${Object.keys(args)[0]}`);
  }
}

/** A small seeded generator for simulating test data (mulberry32). */
export function testRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normals from the test generator (Box–Muller). */
export function testNormals(seed: number): () => number {
  const u = testRandom(seed);
  return () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

/** n values of an AR(θ) series with noise precision τ, after a burn-in of 200 steps from zeros (stationary). */
export function simulateAutoregressive(theta: number[], tau: number, n: number, seed: number): number[] {
  const normal = testNormals(seed);
  const k = theta.length;
  const series: number[] = new Array<number>(k).fill(0);
  for (let t = 0; t < n + 200; t++) {
    let y = normal() / Math.sqrt(tau);
    for (let i = 0; i < k; i++) y += theta[i]! * series[series.length - 1 - i]!;
    series.push(y);
  }
  return series.slice(series.length - n);
}
