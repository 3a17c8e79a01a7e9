import type { Tensor } from "./tensor.ts";

// Canonical parameterisations; `kind` names match the cases of the wire `Distribution` oneof.
export type Distribution =
  | { kind: "pointMass"; value: Tensor }
  | { kind: "normal"; mean: number; variance: number }
  | { kind: "mvNormal"; mean: number[]; covariance: number[] }
  | { kind: "gamma"; shape: number; rate: number }
  | { kind: "beta"; alpha: number; beta: number }
  | { kind: "dirichlet"; alpha: number[] }
  | { kind: "categorical"; probabilities: number[] }
  | { kind: "bernoulli"; p: number }
  | { kind: "wishart"; degreesOfFreedom: number; scale: number[] }
  | { kind: "studentT"; degreesOfFreedom: number; location: number; scale: number }
  | { kind: "sampleList"; samples: Tensor; weights: number[] }
  | { kind: "product"; factors: Distribution[] };

export type DistributionKind = Distribution["kind"];
