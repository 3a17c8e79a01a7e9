import { betaBernoulli } from "./beta-bernoulli/index.ts";
import { contextualBandits } from "./contextual-bandits/index.ts";
import { dirichletCategorical } from "./dirichlet-categorical/index.ts";
import { featureDiscovery } from "./feature-discovery/index.ts";
import { linearRegression } from "./linear-regression/index.ts";
import { logisticRegression } from "./logistic-regression/index.ts";
import { mhealthThompson } from "./mhealth-thompson/index.ts";
import type { AnyModelType } from "./types.ts";

// Adding a model type: its folder plus one line here.
const all: readonly AnyModelType[] = [betaBernoulli, dirichletCategorical, linearRegression, featureDiscovery, contextualBandits, mhealthThompson, logisticRegression];

export const modelTypes: ReadonlyMap<string, AnyModelType> = new Map(all.map((m) => [m.schema.name, m]));
