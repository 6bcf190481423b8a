// A runtime-neutral HTTP server for the examples and the tests: Bun.serve on Bun, Deno.serve on Deno, port 0.

/** A listening server: its base URL and the way to stop it. */
export interface TestServer {
  url: string;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

type Fetch = (request: Request) => Response | Promise<Response>;

/** Serves `fetch` on 127.0.0.1 at a free port. */
export function serve(fetch: Fetch): Promise<TestServer> {
  const runtime = globalThis as {
    Bun?: { serve(options: { port: number; hostname: string; fetch: Fetch }): { port: number; stop(force?: boolean): Promise<void> | void } };
    Deno?: {
      serve(
        options: { port: number; hostname: string; onListen?: () => void },
        handler: Fetch,
      ): { addr: { port: number }; shutdown(): Promise<void> };
    };
  };
  let url: string;
  let stop: () => Promise<void>;
  if (runtime.Bun) {
    const server = runtime.Bun.serve({ port: 0, hostname: "127.0.0.1", fetch });
    url = `http://127.0.0.1:${server.port}`;
    stop = async () => void await server.stop(true);
  } else if (runtime.Deno) {
    const server = runtime.Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, fetch);
    url = `http://127.0.0.1:${server.addr.port}`;
    stop = () => server.shutdown();
  } else {
    throw new Error("serve() needs Bun or Deno");
  }
  return Promise.resolve({ url, close: stop, [Symbol.asyncDispose]: stop });
}

/** GETs `url` and returns status and body text (the body is always consumed). */
export async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const response = await fetch(url, { headers });
  return { status: response.status, text: await response.text() };
}
