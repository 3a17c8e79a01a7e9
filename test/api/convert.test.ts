import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { DistributionSchema } from "../../gen/posterior/v1/values_pb.ts";
import { distributionIn, distributionOut } from "../../src/api/convert.ts";
import { toConnectError } from "../../src/api/errors.ts";
import type { Distribution } from "../../src/math/distribution.ts";

const everyKind: Distribution[] = [
  { kind: "pointMass", value: { shape: [2], values: [1, 2] } },
  { kind: "normal", mean: 1.5, variance: 0.25 },
  { kind: "mvNormal", mean: [1, 2], covariance: [2, 0.5, 0.5, 1] },
  { kind: "gamma", shape: 2, rate: 3 },
  { kind: "beta", alpha: 2, beta: 5 },
  { kind: "dirichlet", alpha: [1, 2, 3] },
  { kind: "categorical", probabilities: [0.2, 0.8] },
  { kind: "bernoulli", p: 0.3 },
  { kind: "wishart", degreesOfFreedom: 4, scale: [1, 0, 0, 1] },
  { kind: "studentT", degreesOfFreedom: 3, location: -1, scale: 2 },
  { kind: "sampleList", samples: { shape: [3, 1], values: [1, 2, 3] }, weights: [0.5, 0.25, 0.25] },
  { kind: "product", factors: [{ kind: "normal", mean: 0, variance: 1 }, { kind: "gamma", shape: 1, rate: 1 }] },
];

describe("distributions on the wire", () => {
  it.each(everyKind)("$kind survives a binary round trip", (d) => {
    const wire = toBinary(DistributionSchema, create(DistributionSchema, distributionOut(d)));
    expect(distributionIn(fromBinary(DistributionSchema, wire))).toEqual(d);
  });

  it("refuses a distribution without a kind, naming the field", () => {
    const error = toConnectError(
      (() => {
        try {
          distributionIn(create(DistributionSchema, { kind: { case: "product", value: { factors: [{}] } } }), "prior");
        } catch (e) {
          return e;
        }
      })(),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe("prior.product.factors[0]: must set one distribution kind");
  });
});
