// Calls served outside connect-node (the gRPC-only port, the short unary paths of the main port):
// their HandlerContext, built as it is read, a unary call's run, and the short paths' routes.
import type http from "node:http";
import { create, type DescMessage, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, createContextValues, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { type Compression, createMethodSerializationLookup, type MethodSerializationLookup } from "@connectrpc/connect/protocol";
import { requestLogger } from "../api/context.ts";
import { toConnectError } from "../api/errors.ts";
import { beginCall, type CallLogging } from "./interceptors.ts";
import type { RequestHandler } from "./listen.ts";

/** What the transport knows of a call. */
export interface CallSource {
  readonly protocolName: string;
  /** Epoch milliseconds; Infinity without a deadline. */
  readonly deadlineMs: number;
  requestHeader(): Headers;
  /** Calls `listener` if the client gives up on the call. */
  onCancel(listener: () => void): void;
  offCancel(listener: () => void): void;
}

const CALL_FINISHED = new ConnectError("the call has finished", Code.Canceled);

/**
 * Most unary handlers never look at the signal or the headers, and connect's createHandlerContext
 * costs three AbortControllers and three Headers per call (about a tenth of a small call's CPU),
 * plus a DOMException, with its stack trace, when it is aborted at the end.
 */
export class CallContext implements HandlerContext {
  readonly requestMethod = "POST";
  readonly protocolName: string;
  readonly service: DescService;
  readonly method: DescMethod;
  readonly url: string;
  readonly values: ContextValues;
  readonly #source: CallSource;
  readonly #shutdownSignal: AbortSignal;
  #controller?: AbortController;
  #timer?: NodeJS.Timeout;
  #requestHeader?: Headers;
  #responseHeader?: Headers;
  #responseTrailer?: Headers;

  constructor(service: DescService, method: DescMethod, source: CallSource, shutdownSignal: AbortSignal, values: ContextValues) {
    this.protocolName = source.protocolName;
    this.service = service;
    this.method = method;
    this.url = `/${service.typeName}/${method.name}`;
    this.values = values;
    this.#source = source;
    this.#shutdownSignal = shutdownSignal;
  }

  get signal(): AbortSignal {
    if (this.#controller) return this.#controller.signal;
    const controller = (this.#controller = new AbortController());
    if (this.#shutdownSignal.aborted) controller.abort(this.#shutdownSignal.reason);
    else this.#shutdownSignal.addEventListener("abort", this.#onShutdown);
    this.#source.onCancel(this.#onCancelled);
    const timeout = this.timeoutMs();
    if (timeout !== undefined) {
      this.#timer = setTimeout(() => controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeout);
    }
    return controller.signal;
  }

  readonly timeoutMs = () => (Number.isFinite(this.#source.deadlineMs) ? Math.max(0, this.#source.deadlineMs - Date.now()) : undefined);

  get requestHeader(): Headers {
    return (this.#requestHeader ??= this.#source.requestHeader());
  }

  get responseHeader(): Headers {
    return (this.#responseHeader ??= new Headers());
  }

  get responseTrailer(): Headers {
    return (this.#responseTrailer ??= new Headers());
  }

  /** Ends whatever the handler still runs for this call and drops the listeners. */
  finish(): void {
    if (!this.#controller) return;
    clearTimeout(this.#timer);
    this.#shutdownSignal.removeEventListener("abort", this.#onShutdown);
    this.#source.offCancel(this.#onCancelled);
    this.#controller.abort(CALL_FINISHED);
  }

  readonly #onShutdown = () => this.#controller!.abort(this.#shutdownSignal.reason);
  readonly #onCancelled = () => this.#controller!.abort(new ConnectError("the client cancelled the call", Code.Canceled));
}

export type UnaryImpl = (input: unknown, context: HandlerContext) => unknown;

/** Serves a request and returns true, or returns false to leave it to connect-node. */
export type ShortPath = (...request: Parameters<RequestHandler>) => boolean;

export interface UnaryRoute {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly impl: UnaryImpl;
  readonly serialization: MethodSerializationLookup<DescMessage, DescMessage>;
}

/** Every unary method of `services`, served by `serve`, by its path (`/package.Service/Method`). */
export function unaryRoutes<T>(
  services: ReadonlyArray<readonly [DescService, ServiceImpl<DescService>]>,
  options: ShortPathOptions,
  serve: (route: UnaryRoute) => T,
): Map<string, T> {
  const routes = new Map<string, T>();
  for (const [service, impls] of services) {
    for (const method of service.methods) {
      if (method.methodKind !== "unary") continue;
      const impl = (impls as unknown as Record<string, UnaryImpl>)[method.localName]!.bind(impls);
      const serialization = createMethodSerializationLookup(method, undefined, undefined, options);
      routes.set(`/${service.typeName}/${method.name}`, serve({ service, method, impl, serialization }));
    }
  }
  return routes;
}

/** The largest request and response messages, on every port and protocol. */
export const MESSAGE_LIMITS = { readMaxBytes: 16 << 20, writeMaxBytes: 64 << 20 } as const;

/** The main port's short paths take connect-node's own limits and compressions, to answer alike. */
export interface ShortPathOptions extends CallLogging {
  readonly readMaxBytes: number;
  readonly writeMaxBytes: number;
  readonly acceptCompression: Compression[];
  readonly compressMinBytes: number;
  readonly shutdownSignal: AbortSignal;
}

/** A unary call's end: the response message, or the error as the client will see it. */
export type UnaryOutcome = { readonly requestId: string } & ({ readonly output: Message } | { readonly error: ConnectError });

/**
 * Runs a unary handler outside connect-node, doing what the `observe` interceptor does there: the
 * request id, its logger in the context, the access-log line, domain errors as ConnectErrors.
 */
export async function runUnary(
  impl: UnaryImpl,
  input: unknown,
  call: CallLogging & { service: DescService; method: DescMethod; source: CallSource; shutdownSignal: AbortSignal },
  clientRequestId: string | undefined,
): Promise<UnaryOutcome> {
  const { service, method, source, shutdownSignal } = call;
  const observed = beginCall(call, `${service.typeName}/${method.name}`, clientRequestId);
  const handlerContext = new CallContext(service, method, source, shutdownSignal, createContextValues().set(requestLogger, observed.log));
  try {
    const output = create(method.output, (await impl(input, handlerContext)) as never);
    observed.done();
    return { requestId: observed.id, output };
  } catch (error) {
    observed.done(error);
    return { requestId: observed.id, error: toConnectError(error) };
  } finally {
    handlerContext.finish();
  }
}

/**
 * A call over node:http or node:http2: its request headers, and the response (or HTTP/2 stream) whose
 * early close means the client gave up. Calls with a timeout go to connect-node.
 */
export function httpSource(
  headers: http.IncomingHttpHeaders,
  response: { readonly writableFinished: boolean; once(event: "close", listener: () => void): unknown; off(event: "close", listener: () => void): unknown },
  protocolName = "connect",
): CallSource {
  let listeners: Map<() => void, () => void> | undefined; // most calls never listen
  return {
    protocolName,
    deadlineMs: Infinity,
    requestHeader: () => {
      const header = new Headers();
      for (const [name, value] of Object.entries(headers)) if (value !== undefined && !name.startsWith(":")) header.set(name, String(value));
      return header;
    },
    onCancel(listener) {
      // A response closes when it is done, too; only a close before the answer is a cancel.
      const onClose = () => response.writableFinished || listener();
      (listeners ??= new Map()).set(listener, onClose);
      response.once("close", onClose);
    },
    offCancel(listener) {
      const onClose = listeners?.get(listener);
      if (onClose) response.off("close", onClose);
    },
  };
}
