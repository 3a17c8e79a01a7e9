import { once } from "node:events";
import http from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";

export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/**
 * Offered each HTTP/2 stream before node's compatibility API wraps it in a request and a response
 * for the RequestHandler; returns true when it has taken the stream.
 */
export type StreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;

export interface Handlers {
  readonly request: RequestHandler;
  readonly stream?: StreamHandler;
}

export interface ListenOptions {
  readonly host: string;
  readonly port: number;
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer };
}

export interface Listener {
  readonly port: number;
  /** Stops accepting, lets in-flight calls finish for up to `graceMs`, then drops what is left. */
  close(graceMs: number): Promise<void>;
}

const H2_PREFACE_START = "PRI";

/**
 * One port for HTTP/1.1 and HTTP/2. Plaintext: each connection's first bytes tell the HTTP/2
 * preface (h2c prior knowledge) from an HTTP/1.1 request line. TLS: ALPN decides.
 */
export async function listen(handlers: Handlers, options: ListenOptions): Promise<Listener> {
  const handler = handlers.request;
  const sessions = new Set<http2.Http2Session>();
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };

  let front: net.Server;
  let h1: http.Server | undefined;
  let h2: http2.Http2Server | http2.Http2SecureServer;
  if (options.tls) {
    h2 = http2.createSecureServer({ ...options.tls, allowHTTP1: true, noDelay: true }, handler);
    h2.on("secureConnection", track);
    front = h2;
  } else {
    const plain1 = http.createServer(handler);
    const plain2 = http2.createServer(handler);
    h1 = plain1;
    h2 = plain2;
    // Without Nagle's algorithm, as node:http's own servers do: a small answer is sent at once
    // rather than held for the acknowledgement of the one before. (HTTP/2 sessions set it themselves.)
    front = net.createServer({ noDelay: true }, (socket) => {
      track(socket);
      socket.once("readable", function sniff() {
        const head: Buffer | null = socket.read(H2_PREFACE_START.length) ?? socket.read();
        if (head === null) {
          if (!socket.destroyed) socket.once("readable", sniff);
          return;
        }
        socket.unshift(head);
        (head.toString("latin1") === H2_PREFACE_START ? plain2 : plain1).emit("connection", socket);
      });
    });
  }
  if (handlers.stream) offerStreamsFirst(h2, handlers.stream);
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });

  front.listen(options.port, options.host);
  await once(front, "listening");
  const port = (front.address() as AddressInfo).port;

  return {
    port,
    async close(graceMs) {
      const closed = new Promise<void>((resolve) => front.close(() => resolve()));
      h1?.close();
      h1?.closeIdleConnections();
      for (const session of sessions) session.close(); // GOAWAY: running streams may finish
      const timer = setTimeout(() => {
        for (const session of sessions) session.destroy();
        for (const socket of sockets) socket.destroy();
      }, graceMs);
      await closed;
      clearTimeout(timer);
    },
  };
}

/** Node's compatibility API is itself a "stream" listener; `take` goes before it. */
function offerStreamsFirst(server: http2.Http2Server | http2.Http2SecureServer, take: StreamHandler) {
  const compatibility = server.listeners("stream") as Array<(...args: unknown[]) => void>;
  server.removeAllListeners("stream");
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
    if (take(stream, headers)) return;
    for (const listener of compatibility) listener.call(server, stream, headers, ...rest);
  });
}
