// Statements sent at every call (an event append) that PGlite parses and plans once. PGlite's own
// `query()` enters its WebAssembly PostgreSQL six times per statement (parse, describe, bind,
// describe, execute, sync) and parses and plans it anew each time; a prepared statement is bound
// and executed in one entry. On PostgreSQL, and inside a transaction, the ORM's connection runs it.
import { type PGlite, parse, protocol } from "@electric-sql/pglite";
import type { EntityManager } from "@mikro-orm/sql";
import { PgliteConnection } from "@mikro-orm/pglite";
import { CompiledQuery } from "kysely";

export interface Statement {
  /** Its prepared statement's name in PGlite's session. */
  readonly name: string;
  readonly text: string;
  /** The parameters' type OIDs, so that they need no describing. */
  readonly types: readonly number[];
}

/** Runs SQL with bind parameters in `em`'s transaction, if any (`em.execute` inlines parameters). */
export async function query<R>(em: EntityManager, sql: string, parameters: unknown[]): Promise<readonly R[]> {
  return (await em.getKysely().executeQuery<R>(CompiledQuery.raw(sql, parameters))).rows;
}

/** Runs `statement` in `em`'s transaction if it has one, and otherwise by itself (it commits alone). */
export async function run<R>(em: EntityManager, statement: Statement, parameters: unknown[]): Promise<readonly R[]> {
  const connection = em.getConnection();
  if (!(connection instanceof PgliteConnection) || em.isInTransaction()) return query<R>(em, statement.text, parameters);
  return runPrepared<R>(await connection.getNativeClient(), statement, parameters);
}

/** The names of the statements prepared in each PGlite session. */
const preparedIn = new WeakMap<PGlite, Set<string>>();

// SQLSTATE invalid_sql_statement_name: the session no longer has the statement.
const NO_SUCH_STATEMENT = "26000";

function runPrepared<R>(pglite: PGlite, statement: Statement, parameters: unknown[]): Promise<readonly R[]> {
  // As PGlite's query(): after any open transaction, so that the statement is not part of it (the
  // ORM's transactions hold PGlite's transaction lock throughout), then alone in the session.
  return pglite._runExclusiveTransaction(() =>
    pglite._runExclusiveQuery(async () => {
      let prepared = preparedIn.get(pglite);
      if (!prepared) preparedIn.set(pglite, (prepared = new Set()));
      for (let attempt = 0; ; attempt++) {
        if (!prepared.has(statement.name)) {
          // Alone, so that a statement that fails to prepare leaves nothing behind.
          await pglite.execProtocolStream(Buffer.concat([protocol.serialize.parse({ ...statement, types: [...statement.types] }), protocol.serialize.sync()]));
          prepared.add(statement.name);
        }
        const values = parameters.map((value, k) => serialize(pglite, statement.types[k]!, value));
        const message = Buffer.concat([
          protocol.serialize.bind({ statement: statement.name, values }),
          protocol.serialize.describe({ type: "P" }),
          protocol.serialize.execute({}),
          protocol.serialize.sync(),
        ]);
        try {
          // One entry: after an error PostgreSQL skips to the Sync, so the session is ready again.
          // The stream variant, as query() uses: execProtocol also copies the raw answer.
          return parse.parseResults(await pglite.execProtocolStream(message), pglite.parsers)[0]!.rows as R[];
        } catch (error) {
          if ((error as { code?: string }).code !== NO_SUCH_STATEMENT || attempt > 0) throw error;
          prepared.delete(statement.name);
        }
      }
    }),
  );
}

/** A parameter's text, as PGlite's query() makes it. */
function serialize(pglite: PGlite, type: number, value: unknown): string | null {
  if (value === null || value === undefined) return null;
  const serializer = pglite.serializers[type];
  return serializer ? serializer(value) : String(value);
}
