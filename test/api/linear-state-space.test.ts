import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Distribution } from "../../gen/posterior/v1/values_pb.ts";
import { expectArgumentsRejected, expectFailure, testNormals as normals } from "../support/assertions.ts";
import { inMemoryApp } from "../support/harness.ts";

let app: Awaited<ReturnType<typeof inMemoryApp>>;
beforeAll(async () => {
  app = await inMemoryApp();
});
afterAll(() => app.close());

const MODEL = "linear-state-space-model-v1";
type Data = Record<string, { shape?: number[]; values: number[] }>;

const create = async (args: Record<string, number> = {}) =>
  (await app.models.createInstance({ model: MODEL, arguments: args })).instance!.instanceId;
const vec = (...v: number[]) => ({ shape: [v.length], values: v });
const attach = (instanceId: string, events: Data[], episode = "default") =>
  app.models.attachEvents({ instanceId, episode, events: events.map((data) => ({ data })) });
const learn = async (instanceId: string, relearn = false) => (await app.learning.learn({ instanceId, wait: true, relearn })).run!;

function mvNormal(d: Distribution | undefined) {
  if (d?.kind.case !== "mvNormal") throw new Error(`expected mvNormal, got ${d?.kind.case}`);
  return d.kind.value;
}

const infer = async (instanceId: string, observation: Data, args: Record<string, number> = {}, storeEvent = false) => {
  const r = await app.inference.infer({ instanceId, observation, arguments: args, storeEvent });
  const states = r.predictions.states;
  if (states?.kind.case !== "product") throw new Error(`expected a product prediction, got ${states?.kind.case}`);
  return { states: states.kind.value.factors.map(mvNormal), state: mvNormal(r.posteriors.state) };
};

const learnedA = async (instanceId: string) => mvNormal((await app.models.getParameters({ instanceId })).parameters.A);

const rotation = (theta: number) => [Math.cos(theta), -Math.sin(theta), Math.sin(theta), Math.cos(theta)];

/** The reference's generator: x_0 = 1, x_t = A x_{t−1} + N(0, I), y_t = x_t + N(0, I). */
function rotatingSsm(n: number, k: number, normal: () => number) {
  const a = rotation(Math.PI / k);
  const xs: number[][] = [];
  const ys: number[][] = [];
  let x = [1, 1];
  for (let t = 0; t < n; t++) {
    x = [a[0]! * x[0]! + a[1]! * x[1]! + normal(), a[2]! * x[0]! + a[3]! * x[1]! + normal()];
    xs.push(x);
    ys.push([x[0]! + normal(), x[1]! + normal()]);
  }
  return { a, xs, ys };
}

const norm = (v: readonly number[]) => Math.hypot(...v);
/** Julia's isapprox(x, y; rtol): ‖x − y‖ ≤ rtol·max(‖x‖, ‖y‖). */
const approx = (x: readonly number[], y: readonly number[], rtol: number) =>
  norm(x.map((v, i) => v - y[i]!)) <= rtol * Math.max(norm(x), norm(y));

const GRID = [200, 300].flatMap((n) => [2, 4, 8].flatMap((k) => [3, 6].map((horizon) => ({ n, k, horizon }))));

describe("linear-state-space-model-v1 reference behaviour (RxInferServer checks)", () => {
  // As in the reference (generate_rotate_ssm_data defaults to a fresh StableRNG(1234)), every instance
  // gets the noise stream of the same seed. The rtol 0.3 check on the future states depends on the draw,
  // not only on the model: whenever the true state happens to be near the origin it fails even for the
  // predictions made with the true A (measured with this generator: 5 of the grid's 54 steps fail for
  // seed 1234, 0 for seed 7, both with the true A). The reference passes on its own StableRNG stream; here
  // the stream is seed 7, on which the ideal predictor passes, so a failure points at the model.
  it("learns a rotation A within rtol 0.1 and predicts the true future states within rtol 0.3 and Mahalanobis distance 2.45", { timeout: 60_000 }, async () => {
    for (const { n, k, horizon } of GRID) {
      const { a, xs, ys } = rotatingSsm(n + horizon, k, normals(7));
      const id = await create({ state_dimension: 2, horizon });
      await attach(id, ys.slice(0, n).map((y) => ({ y: vec(...y) })));
      const run = await learn(id);
      expect(run.metrics?.dataPoints).toBe(BigInt(n));
      const { mean: A } = await learnedA(id);
      expect(approx(A, a, 0.1), `A for n=${n}, k=${k}: ${A}`).toBe(true);

      const { states } = await infer(id, { y: vec(...ys[n - 1]!), current_state: vec(...xs[n - 1]!) });
      expect(states).toHaveLength(horizon);
      states.forEach(({ mean, covariance }, i) => {
        const truth = xs[n + i]!;
        expect(approx(mean, truth, 0.3), `step ${i + 1} for n=${n}, k=${k}`).toBe(true);
        const e = mean.map((v, j) => v - truth[j]!);
        const [c00, c01, c10, c11] = covariance as [number, number, number, number];
        const det = c00 * c11 - c01 * c10;
        const m2 = (e[0]! * e[0]! * c11 - e[0]! * e[1]! * (c01 + c10) + e[1]! * e[1]! * c00) / det;
        expect(Math.sqrt(m2), `Mahalanobis at step ${i + 1} for n=${n}, k=${k}, horizon=${horizon}`).toBeLessThan(2.45);
      });
    }
  });

  it("predicted covariances are (t + 0.5)·I for an orthogonal A with current_state given, and horizon can be overridden per call", async () => {
    const { ys } = rotatingSsm(200, 4, normals(9));
    const id = await create();
    await attach(id, ys.map((y) => ({ y: vec(...y) })));
    await learn(id);
    const { mean: A } = await learnedA(id);
    const { states, state } = await infer(id, { y: vec(2, 0), current_state: vec(1, 1) }, { horizon: 4 });
    expect(state.mean).toEqual([1.5, 0.5]);
    expect(states).toHaveLength(4);
    // The learned A is only nearly orthogonal, so the exact check uses A itself: P_t = A P_{t−1} Aᵀ + I from P_0 = I/2.
    let p = [0.5, 0, 0, 0.5];
    states.forEach(({ covariance }, t) => {
      const ap = [A[0]! * p[0]! + A[1]! * p[2]!, A[0]! * p[1]! + A[1]! * p[3]!, A[2]! * p[0]! + A[3]! * p[2]!, A[2]! * p[1]! + A[3]! * p[3]!];
      p = [
        ap[0]! * A[0]! + ap[1]! * A[1]! + 1,
        ap[0]! * A[2]! + ap[1]! * A[3]!,
        ap[2]! * A[0]! + ap[3]! * A[1]!,
        ap[2]! * A[2]! + ap[3]! * A[3]! + 1,
      ];
      covariance.forEach((v, i) => expect(v).toBeCloseTo(p[i]!, 10));
      // And near (t + 0.5)·I since A is nearly a rotation.
      expect(covariance[0]).toBeCloseTo(t + 1.5, 0);
    });
    expect((await infer(id, { y: vec(0, 0) })).states).toHaveLength(10);
  });
});

describe("linear-state-space-model-v1 instance state and learning", () => {
  it("carries the filter belief over between infer calls, starting from N(1, I)", async () => {
    const id = await create({ horizon: 1 });
    // A = 0 before learning: each step predicts N(0, I), so the belief is the scalar update per component.
    const first = await infer(id, { y: vec(3, -1) });
    first.state.mean.forEach((v, i) => expect(v).toBeCloseTo([2, 0][i]!, 14));
    first.state.covariance.forEach((v, i) => expect(v).toBeCloseTo([0.5, 0, 0, 0.5][i]!, 14));
    // Only a belief carried over from the first call gives N(0, I) here: a fresh one would be N(1, I).
    const second = await infer(id, { y: vec(4, 2) });
    second.state.mean.forEach((v, i) => expect(v).toBeCloseTo([2, 1][i]!, 14));
    // current_state restarts the belief regardless of the history.
    const reset = await infer(id, { y: vec(0, 0), current_state: vec(2, 2) });
    reset.state.mean.forEach((v) => expect(v).toBeCloseTo(1, 14));
  });

  it("reports a non-increasing EM free energy, learns from stored infer events and keeps A's Gaussian for the next learn", async () => {
    const { a, ys } = rotatingSsm(300, 4, normals(21));
    const id = await create({ iterations: 30 });
    await attach(id, ys.slice(0, 150).map((y) => ({ y: vec(...y) })));
    const run = await learn(id);
    const fe = run.metrics!.freeEnergy;
    expect(fe).toHaveLength(30);
    for (let i = 1; i < fe.length; i++) expect(fe[i]!).toBeLessThanOrEqual(fe[i - 1]! + 1e-9 * Math.abs(fe[i - 1]!));
    const first = await learnedA(id);
    // Stored inference observations are events too: the second half arrives through infer.
    await infer(id, { y: vec(...ys[150]!), current_state: vec(...ys[150]!) }, {}, true);
    for (const y of ys.slice(151)) await infer(id, { y: vec(...y) }, {}, true);
    const second = await learn(id);
    expect(second.metrics?.dataPoints).toBe(150n);
    const after = await learnedA(id);
    expect(approx(after.mean, a, 0.1)).toBe(true);
    // Both halves' information: the posterior variance of A_00 roughly halves.
    expect(after.covariance[0]!).toBeLessThan(0.6 * first.covariance[0]!);
    const relearned = await learn(id, true);
    expect(relearned.metrics?.dataPoints).toBe(300n);
    const { mean } = await learnedA(id);
    expect(norm(mean.map((v, i) => v - after.mean[i]!))).toBeLessThan(0.03);
    // A learn with nothing new leaves the parameters as they are.
    const before = await app.models.getParameters({ instanceId: id });
    expect((await learn(id)).metrics?.dataPoints).toBe(0n);
    expect((await app.models.getParameters({ instanceId: id })).parameters).toEqual(before.parameters);
  });
});

describe("linear-state-space-model-v1 validation", () => {
  it("rejects missing, misshapen and non-finite observations and invalid arguments with the field at fault", async () => {
    const id = await create({ state_dimension: 3 });
    const call = (observation: Data, args: Record<string, number> = {}) =>
      app.inference.infer({ instanceId: id, observation, arguments: args });
    await expectFailure(call({}), Code.InvalidArgument, "DATA_INCOMPLETE", "observation.y");
    await expectFailure(call({ y: vec(1, 2) }), Code.InvalidArgument, "DATA_LAYOUT_NOT_COMPATIBLE", "observation.y");
    await expectFailure(call({ y: vec(1, Number.NaN, 2) }), Code.InvalidArgument, "DATA_NOT_VALID", "observation.y");
    await expectFailure(
      call({ y: vec(1, 2, 3), current_state: vec(1, 2) }),
      Code.InvalidArgument,
      "DATA_LAYOUT_NOT_COMPATIBLE",
      "observation.current_state",
    );
    await expectFailure(call({ y: vec(1, 2, 3) }, { horizon: 0 }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.horizon");
    await expectFailure(call({ y: vec(1, 2, 3) }, { process_noise: 2 }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.process_noise");
    await expectFailure(attach(id, [{ y: vec(1, 2, Number.POSITIVE_INFINITY) }]), Code.InvalidArgument, "DATA_NOT_VALID", "events[0].data.y");
    await expectArgumentsRejected(app.models, MODEL, [{ state_dimension: 0 }, { process_noise: 0 }, { initial_variance: -1 }, { iterations: 1.5 }]);
    expect((await app.models.getEpisode({ instanceId: id, name: "default" })).episode?.eventCount).toBe(0n);
    // The failed calls left the fresh belief N(1, I) untouched: the first valid call updates it directly.
    const { state } = await infer(id, { y: vec(3, 3, 3) });
    state.mean.forEach((v) => expect(v).toBeCloseTo(2, 14));
  });
});
