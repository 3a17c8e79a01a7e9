import { autoregressive } from "./autoregressive/index.ts";
import { betaBernoulli } from "./beta-bernoulli/index.ts";
import { contextualBandits } from "./contextual-bandits/index.ts";
import { dirichletCategorical } from "./dirichlet-categorical/index.ts";
import { drone3d } from "./drone-3d/index.ts";
import { featureDiscovery } from "./feature-discovery/index.ts";
import { hmm } from "./hmm/index.ts";
import { linearControl } from "./linear-control/index.ts";
import { linearRegression } from "./linear-regression/index.ts";
import { linearStateSpace } from "./linear-state-space/index.ts";
import { logisticRegression } from "./logistic-regression/index.ts";
import { mhealthThompson } from "./mhealth-thompson/index.ts";
import type { AnyModelType } from "./types.ts";

// Adding a model type: its folder plus one line here.
const all: readonly AnyModelType[] = [betaBernoulli, dirichletCategorical, linearRegression, featureDiscovery, contextualBandits, mhealthThompson, logisticRegression, linearStateSpace, autoregressive, hmm, linearControl, drone3d];

export const modelTypes: ReadonlyMap<string, AnyModelType> = new Map(all.map((m) => [m.schema.name, m]));
