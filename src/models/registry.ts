import { betaBernoulli } from "./beta-bernoulli/index.ts";
import { dirichletCategorical } from "./dirichlet-categorical/index.ts";
import type { AnyModelType } from "./types.ts";

// Adding a model type: its folder plus one line here.
const all: readonly AnyModelType[] = [betaBernoulli, dirichletCategorical];

export const modelTypes: ReadonlyMap<string, AnyModelType> = new Map(all.map((m) => [m.schema.name, m]));
