// An optional second port that speaks only gRPC, on @grpc/grpc-js, for backends whose call rate
// makes connect-node's per-call cost matter (see README, "Measured figures"). It mounts the very
// same service implementations as the main port; only the transport differs.
import { create, type DescMessage, type DescMethod, type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createContextValues, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import * as grpc from "@grpc/grpc-js";
import { requestLogger } from "../api/context.ts";
import { toConnectError } from "../api/errors.ts";
import { CallContext, type CallSource, MESSAGE_LIMITS, runUnary } from "./call-context.ts";
import { beginCall, type CallLogging, REQUEST_ID_HEADER } from "./interceptors.ts";

type AnyImpl = (input: unknown, context: HandlerContext) => unknown;

export interface GrpcListener {
  readonly port: number;
  /** Stops accepting calls, lets those in flight finish for up to `graceMs`, then ends the rest. */
  close(graceMs: number): Promise<void>;
}

export async function listenGrpc(
  implementations: ReadonlyArray<readonly [DescService, ServiceImpl<DescService>]>,
  options: CallLogging & {
    host: string;
    port: number;
    tls?: { key: Buffer; cert: Buffer };
    shutdownSignal: AbortSignal;
  },
): Promise<GrpcListener> {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": MESSAGE_LIMITS.readMaxBytes,
    "grpc.max_send_message_length": MESSAGE_LIMITS.writeMaxBytes,
  });
  for (const [service, impl] of implementations) {
    for (const method of service.methods) {
      const handler = handlerFor(service, method, (impl as unknown as Record<string, AnyImpl>)[method.localName]!, options);
      server.register(`/${service.typeName}/${method.name}`, handler, serializer(method.output), deserializer(method.input), callType(method));
    }
  }
  const credentials = options.tls
    ? grpc.ServerCredentials.createSsl(null, [{ private_key: options.tls.key, cert_chain: options.tls.cert }])
    : grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${options.host}:${options.port}`, credentials, (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return {
    port,
    close: (graceMs) =>
      new Promise((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}

const serializer = (schema: DescMessage) => (message: unknown) => {
  const bytes = toBinary(schema, create(schema, message as never));
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength); // a view, not a copy
};

const deserializer = (schema: DescMessage) => (bytes: Buffer) => fromBinary(schema, bytes);

function callType(method: DescMethod): "unary" | "serverStream" | "clientStream" | "bidi" {
  switch (method.methodKind) {
    case "unary":
      return "unary";
    case "server_streaming":
      return "serverStream";
    case "client_streaming":
      return "clientStream";
    default:
      return "bidi";
  }
}

type Call = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

function handlerFor(
  service: DescService,
  method: DescMethod,
  impl: AnyImpl,
  options: CallLogging & { shutdownSignal: AbortSignal },
): grpc.UntypedHandleCall {
  const path = `/${service.typeName}/${method.name}`;
  if (method.methodKind === "unary") {
    return (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      void runUnary(impl, call.request, { service, method, source: grpcSource(call), ...options }, requestIdOf(call)).then((outcome) => {
        const metadata = new grpc.Metadata();
        metadata.set(REQUEST_ID_HEADER, outcome.requestId);
        if ("error" in outcome) callback(statusOf(outcome.error, metadata));
        else callback(null, outcome.output, metadata);
      });
    };
  }
  if (method.methodKind === "client_streaming") throw new Error(`${path}: client streaming is not served on the gRPC port`);
  return (call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>) => {
    const observed = beginCall(options, `${service.typeName}/${method.name}`, requestIdOf(call));
    const context = new CallContext(service, method, grpcSource(call), options.shutdownSignal, createContextValues().set(requestLogger, observed.log));
    const metadata = new grpc.Metadata();
    metadata.set(REQUEST_ID_HEADER, observed.id);
    call.sendMetadata(metadata);
    const input = method.methodKind === "server_streaming" ? (call as grpc.ServerWritableStream<unknown, unknown>).request : (call as AsyncIterable<unknown>);
    void (async () => {
      try {
        for await (const message of impl(input, context) as AsyncIterable<unknown>) {
          if (!call.write(message)) await new Promise((resolve) => call.once("drain", resolve));
        }
        observed.done();
        call.end(metadata);
      } catch (error) {
        observed.done(error);
        call.emit("error", statusOf(error, metadata));
      } finally {
        context.finish();
      }
    })();
  };
}

const requestIdOf = (call: Call) => call.metadata.get(REQUEST_ID_HEADER)[0]?.toString();

function grpcSource(call: Call): CallSource {
  const deadline = call.getDeadline();
  const events = call as NodeJS.EventEmitter;
  return {
    protocolName: "grpc",
    deadlineMs: deadline instanceof Date ? deadline.getTime() : deadline,
    requestHeader: () => headersOf(call.metadata),
    onCancel: (listener) => events.once("cancelled", listener),
    offCancel: (listener) => events.off("cancelled", listener),
  };
}

function headersOf(metadata: grpc.Metadata): Headers {
  const headers = new Headers();
  for (const [key, values] of Object.entries(metadata.getMap())) {
    if (!key.endsWith("-bin")) headers.set(key, String(values));
  }
  return headers;
}

/** The same code, message and google.rpc details the main port sends, as grpc-js status. */
function statusOf(error: unknown, metadata: grpc.Metadata): grpc.ServiceError {
  const connectError = toConnectError(error);
  const trailer = new Headers();
  setTrailerStatus(trailer, connectError);
  const details = trailer.get("grpc-status-details-bin");
  if (details) metadata.set("grpc-status-details-bin", Buffer.from(details, "base64"));
  return Object.assign(new Error(connectError.rawMessage), {
    code: connectError.code as number as grpc.status,
    details: connectError.rawMessage,
    metadata,
  });
}
