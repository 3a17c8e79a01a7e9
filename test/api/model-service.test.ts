import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ArgumentType } from "../../gen/posterior/v1/model_service_pb.ts";
import { expectFailure } from "../support/assertions.ts";
import { inMemoryApp, tensor } from "../support/harness.ts";

let app: Awaited<ReturnType<typeof inMemoryApp>>;
beforeAll(async () => {
  app = await inMemoryApp();
});
afterAll(() => app.close());

const createBetaBernoulli = async (args: Record<string, number> = {}) =>
  (await app.models.createInstance({ model: "beta-bernoulli-v1", arguments: args })).instance!;

describe("model types", () => {
  it("lists beta-bernoulli-v1 with its full schema", async () => {
    const { modelTypes } = await app.models.listModelTypes({});
    expect(modelTypes.map((m) => m.name)).toContain("beta-bernoulli-v1");
    const { modelType } = await app.models.getModelType({ name: "beta-bernoulli-v1" });
    expect(modelType?.arguments.map((a) => [a.name, a.type, a.minimum, a.exclusiveMinimum])).toEqual([
      ["prior_a", ArgumentType.NUMBER, 0, true],
      ["prior_b", ArgumentType.NUMBER, 0, true],
    ]);
    expect(modelType?.arguments[0]?.defaultValue?.kind).toEqual({ case: "numberValue", value: 1 });
    expect(modelType?.parameters.map((p) => [p.name, p.family])).toEqual([["p", "beta"]]);
    expect(modelType?.observation.map((f) => [f.name, f.required, f.integer, f.minimum, f.maximum])).toEqual([
      ["y", true, true, 0, 1],
    ]);
  });

  it("answers NOT_FOUND for an unknown model type", async () => {
    await expectFailure(app.models.getModelType({ name: "no-such-model" }), Code.NotFound, "MODEL_NOT_FOUND");
  });
});

describe("instances", () => {
  it("creates an instance with defaults filled in, a seed and a default episode", async () => {
    const instance = (await app.models.createInstance({ model: "beta-bernoulli-v1", description: "demo", arguments: { prior_a: 2 } }))
      .instance!;
    expect(instance.instanceId).toMatch(/^[0-9a-f-]{36}$/);
    expect(instance.arguments).toEqual({ prior_a: 2, prior_b: 1 });
    expect(instance.episodeCount).toBe(1);
    const fetched = (await app.models.getInstance({ instanceId: instance.instanceId })).instance!;
    expect(fetched).toEqual(instance);
    const { episodes } = await app.models.listEpisodes({ instanceId: instance.instanceId });
    expect(episodes.map((e) => e.name)).toEqual(["default"]);
    const { parameters, parametersVersion } = await app.models.getParameters({ instanceId: instance.instanceId });
    expect(parametersVersion).toBe(0);
    expect(parameters.p?.kind).toEqual({ case: "beta", value: expect.objectContaining({ alpha: 2, beta: 1 }) });
  });

  it("keeps a given seed", async () => {
    const { instance } = await app.models.createInstance({ model: "beta-bernoulli-v1", seed: 42 });
    expect(instance?.seed).toBe(42);
  });

  it("rejects bad creations and writes nothing", async () => {
    const before = (await app.models.listInstances({})).totalSize;
    await expectFailure(app.models.createInstance({ model: "nope-v1" }), Code.NotFound, "MODEL_NOT_FOUND");
    await expectFailure(app.models.createInstance({ model: "" }), Code.InvalidArgument, "INVALID_REQUEST", "model");
    await expectFailure(
      app.models.createInstance({ model: "beta-bernoulli-v1", arguments: { prior_a: 0 } }),
      Code.InvalidArgument,
      "ARGUMENTS_NOT_VALID",
      "arguments.prior_a",
    );
    await expectFailure(
      app.models.createInstance({ model: "beta-bernoulli-v1", arguments: { prior_a: "big" } }),
      Code.InvalidArgument,
      "ARGUMENTS_NOT_VALID",
      "arguments.prior_a",
    );
    await expectFailure(
      app.models.createInstance({ model: "beta-bernoulli-v1", arguments: { prior_c: 1 } }),
      Code.InvalidArgument,
      "ARGUMENTS_NOT_VALID",
      "arguments.prior_c",
    );
    await expectFailure(
      app.models.createInstance({ model: "beta-bernoulli-v1", description: "x".repeat(1025) }),
      Code.InvalidArgument,
      "INVALID_REQUEST",
      "description",
    );
    expect((await app.models.listInstances({})).totalSize).toBe(before);
  });

  it("answers NOT_FOUND for unknown instances and INVALID_ARGUMENT for malformed ids", async () => {
    const missing = "00000000-0000-4000-8000-000000000000";
    await expectFailure(app.models.getInstance({ instanceId: missing }), Code.NotFound, "INSTANCE_NOT_FOUND");
    await expectFailure(app.models.getParameters({ instanceId: missing }), Code.NotFound, "INSTANCE_NOT_FOUND");
    await expectFailure(app.models.getInstance({ instanceId: "abc" }), Code.InvalidArgument, "INVALID_REQUEST", "instance_id");
  });

  it("pages through instances newest first and filters by model", async () => {
    const made = [];
    for (let i = 0; i < 5; i++) made.push((await createBetaBernoulli()).instanceId);
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await app.models.listInstances({ pageSize: 2, pageToken, model: "beta-bernoulli-v1" });
      expect(page.instances.length).toBeLessThanOrEqual(2);
      seen.push(...page.instances.map((i) => i.instanceId));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.slice(0, 5)).toEqual(made.reverse());
    expect((await app.models.listInstances({ model: "other-v1" })).instances).toEqual([]);
    await expectFailure(app.models.listInstances({ pageToken: "!!" }), Code.InvalidArgument, "INVALID_REQUEST", "page_token");
  });

  it("deletes an instance with everything it owns", async () => {
    const { instanceId } = await createBetaBernoulli();
    await app.models.attachEvents({ instanceId, events: [{ data: { y: tensor(1) } }] });
    await app.inference.infer({ instanceId, observation: { y: tensor(1) } });
    // Named in upper case: the instance read by the calls above must not outlive it.
    await app.models.deleteInstance({ instanceId: instanceId.toUpperCase() });
    await expectFailure(app.models.getInstance({ instanceId }), Code.NotFound, "INSTANCE_NOT_FOUND");
    await expectFailure(app.models.listEvents({ instanceId }), Code.NotFound, "INSTANCE_NOT_FOUND");
    await expectFailure(app.models.attachEvents({ instanceId, events: [{ data: { y: tensor(1) } }] }), Code.NotFound, "INSTANCE_NOT_FOUND");
    await expectFailure(app.inference.infer({ instanceId, observation: { y: tensor(1) } }), Code.NotFound, "INSTANCE_NOT_FOUND");
    await expectFailure(app.models.deleteInstance({ instanceId }), Code.NotFound, "INSTANCE_NOT_FOUND");
  });

  // Events have no foreign key to their episode (it cost 40 % of an insert), so deletions remove them
  // explicitly. Counted: the instance's events, and events whose episode is gone.
  const storedEvents = async (instanceId: string) =>
    (await app.db.orm.em.getConnection().execute(
      "select count(*)::int as n from event where episode_id not in (select id from episode) or episode_id in (select id from episode where instance_id = ?)",
      [instanceId],
    )) as Array<{ n: number }>;

  it("leaves no event behind when an episode or an instance is deleted", async () => {
    const kept = await createBetaBernoulli();
    await app.models.attachEvents({ instanceId: kept.instanceId, events: [{ data: { y: tensor(1) } }] });
    const { instanceId } = await createBetaBernoulli();
    await app.models.createEpisode({ instanceId, name: "trial" });
    const events = Array.from({ length: 3 }, () => ({ data: { y: tensor(0) } }));
    await app.models.attachEvents({ instanceId, episode: "trial", events });
    await app.models.attachEvents({ instanceId, events });
    expect(await storedEvents(instanceId)).toEqual([{ n: 6 }]);
    await app.models.deleteEpisode({ instanceId, name: "trial" });
    expect(await storedEvents(instanceId)).toEqual([{ n: 3 }]);
    await app.models.deleteInstance({ instanceId });
    expect(await storedEvents(instanceId)).toEqual([{ n: 0 }]);
    expect((await app.models.getEpisode({ instanceId: kept.instanceId })).episode?.eventCount).toBe(1n);
    expect((await app.models.listEvents({ instanceId: kept.instanceId })).events).toHaveLength(1);
  });

  it("leaves no event behind when appends race the deletion of their instance", async () => {
    const { instanceId } = await createBetaBernoulli();
    const events = Array.from({ length: 200 }, (_, i) => ({ data: { y: tensor(i % 2) } }));
    // Callers that keep appending until the instance is gone; the deletion comes while they run.
    const appendUntilGone = async () => {
      for (;;) {
        try {
          await app.models.attachEvents({ instanceId, events });
        } catch (error) {
          expect(ConnectError.from(error).code).toBe(Code.NotFound);
          return;
        }
      }
    };
    const callers = Array.from({ length: 4 }, appendUntilGone);
    await app.models.attachEvents({ instanceId, events });
    await app.models.deleteInstance({ instanceId });
    await Promise.all(callers);
    expect(await storedEvents(instanceId)).toEqual([{ n: 0 }]);
  });
});

describe("episodes and events", () => {
  it("creates, lists, gets and deletes episodes; names are any text", async () => {
    const { instanceId } = await createBetaBernoulli();
    const name = " %%% -- ////// <> == () {} [] | # ? @ ü";
    const { episode } = await app.models.createEpisode({ instanceId, name });
    expect(episode?.name).toBe(name);
    expect(episode?.eventCount).toBe(0n);
    await expectFailure(app.models.createEpisode({ instanceId, name }), Code.AlreadyExists, "EPISODE_ALREADY_EXISTS");
    await expectFailure(app.models.createEpisode({ instanceId, name: "" }), Code.InvalidArgument, "INVALID_REQUEST", "name");
    expect((await app.models.listEpisodes({ instanceId })).episodes.map((e) => e.name)).toEqual(["default", name]);
    expect((await app.models.getEpisode({ instanceId, name })).episode?.name).toBe(name);
    await app.models.deleteEpisode({ instanceId, name });
    await expectFailure(app.models.getEpisode({ instanceId, name }), Code.NotFound, "EPISODE_NOT_FOUND");
    await expectFailure(app.models.deleteEpisode({ instanceId, name: "default" }), Code.FailedPrecondition, "DEFAULT_EPISODE_PROTECTED");
  });

  it("attaches events in order with timestamps, data and metadata, and lists them in pages", async () => {
    const { instanceId } = await createBetaBernoulli();
    const base = Date.parse("2026-01-01T00:00:00Z");
    const events = Array.from({ length: 25 }, (_, i) => ({
      timestamp: timestampFromDate(new Date(base + i * 1000)),
      data: { y: tensor(i % 2) },
      metadata: { index: i, source: "test" },
    }));
    const attached = await app.models.attachEvents({ instanceId, episode: "default", events });
    expect([attached.firstSeq, attached.lastSeq]).toEqual([1n, 25n]);
    expect(attached.episode?.eventCount).toBe(25n);
    expect(timestampDate(attached.episode!.firstEventTime!).getTime()).toBe(base);
    expect(timestampDate(attached.episode!.lastEventTime!).getTime()).toBe(base + 24_000);
    const more = await app.models.attachEvents({ instanceId, events: [{ data: { y: tensor(1) } }] });
    expect([more.firstSeq, more.lastSeq]).toEqual([26n, 26n]);

    const listed = [];
    let pageToken = "";
    do {
      const page = await app.models.listEvents({ instanceId, pageSize: 10, pageToken });
      listed.push(...page.events);
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(listed.map((e) => e.seq)).toEqual(Array.from({ length: 26 }, (_, i) => BigInt(i + 1)));
    expect(listed[3]?.data.y?.values).toEqual([1]);
    expect(listed[3]?.metadata).toEqual({ index: 3, source: "test" });
    expect(timestampDate(listed[3]!.timestamp!).getTime()).toBe(base + 3000);
    expect(listed.every((e) => !e.learned)).toBe(true);
  });

  it("writes no event of a batch that holds one bad event", async () => {
    const { instanceId } = await createBetaBernoulli();
    const good = { data: { y: tensor(1) } };
    const cases = [
      [{ y: tensor(2) }, "DATA_NOT_VALID"],
      [{ y: tensor(Number.NaN) }, "DATA_NOT_VALID"],
      [{ y: tensor(0.5) }, "DATA_NOT_VALID"],
      [{ y: tensor(1, 0) }, "DATA_LAYOUT_NOT_COMPATIBLE"],
      [{ y: tensor(1), z: tensor(1) }, "DATA_LAYOUT_NOT_COMPATIBLE"],
      [{}, "DATA_INCOMPLETE"],
    ] as const;
    for (const [data, reason] of cases) {
      await expectFailure(
        app.models.attachEvents({ instanceId, events: [good, good, { data }] }),
        Code.InvalidArgument,
        reason,
      );
    }
    const e = await expectFailure(
      app.models.attachEvents({ instanceId, events: [good, { data: { y: tensor(3) } }] }),
      Code.InvalidArgument,
      "DATA_NOT_VALID",
      "events[1].data.y",
    );
    expect(e.rawMessage).toContain("must be <= 1, got 3");
    await expectFailure(app.models.attachEvents({ instanceId, events: [] }), Code.InvalidArgument, "INVALID_REQUEST", "events");
    await expectFailure(
      app.models.attachEvents({ instanceId, episode: "missing", events: [good] }),
      Code.NotFound,
      "EPISODE_NOT_FOUND",
    );
    expect((await app.models.getEpisode({ instanceId, name: "default" })).episode?.eventCount).toBe(0n);
  });

  it("wipes an episode: events gone, numbering restarts, other episodes untouched", async () => {
    const { instanceId } = await createBetaBernoulli();
    await app.models.createEpisode({ instanceId, name: "other" });
    await app.models.attachEvents({ instanceId, events: [{ data: { y: tensor(1) } }, { data: { y: tensor(0) } }] });
    await app.models.attachEvents({ instanceId, episode: "other", events: [{ data: { y: tensor(1) } }] });
    const { episode } = await app.models.wipeEpisode({ instanceId, name: "default" });
    expect([episode?.eventCount, episode?.learnedCount, episode?.firstEventTime]).toEqual([0n, 0n, undefined]);
    expect((await app.models.listEvents({ instanceId })).events).toEqual([]);
    expect((await app.models.getEpisode({ instanceId, name: "other" })).episode?.eventCount).toBe(1n);
    const again = await app.models.attachEvents({ instanceId, events: [{ data: { y: tensor(1) } }] });
    expect(again.firstSeq).toBe(1n);
  });
});
