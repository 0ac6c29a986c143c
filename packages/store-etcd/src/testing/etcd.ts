/**
 * Real etcd for tests: starts a single member or a 3-member cluster on loopback as child
 * processes (free ports found at run time, tuned election timings, temporary data dirs) and
 * stops them by PID. Every fixture is disposable: `await using etcd = await startEtcd()`.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface EtcdMemberOptions {
  /** Heartbeat interval in ms (default 50: tests want fast fail-over). */
  heartbeatIntervalMs?: number;
  /** Election timeout in ms (default 500). */
  electionTimeoutMs?: number;
  /** How long to wait for the member (cluster) to be healthy (default 20 s). */
  startTimeoutMs?: number;
  /** The `etcd` binary (default `etcd` on the PATH, or `$ETCD_BIN`). */
  binary?: string;
  /** Extra flags, e.g. `--auto-compaction-retention=1`. */
  extraArgs?: string[];
  /**
   * Serve clients over TLS only (https:// endpoints), with certificates from a throwaway CA
   * (made with `openssl`), and require client certificates (`--client-cert-auth`): pass the
   * cluster's `tls` to the store. Health checks go to a plain-http metrics URL.
   */
  tls?: boolean;
}

/** What a client needs to talk to a TLS cluster: the CA, and a client certificate and key (PEM). */
export interface EtcdClientTls {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** One etcd process and how to reach it. */
export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  /** The running process's id; undefined while stopped. */
  readonly pid: number | undefined;
  readonly running: boolean;
}

export interface EtcdCluster extends AsyncDisposable {
  readonly members: readonly EtcdMember[];
  /** Client URLs of every member (pass them all to the store). */
  readonly endpoints: string[];
  /** With `tls`: the CA and a client certificate for the store. */
  readonly tls: EtcdClientTls | undefined;
  /** SIGKILLs a member (the data dir stays, so it can be restarted). */
  kill(index: number): Promise<void>;
  /** Restarts a stopped member with its data dir and waits for the cluster to be healthy. */
  restart(index: number): Promise<void>;
  /** The index of the current raft leader (asks each running member). */
  leaderIndex(): Promise<number>;
  /** Stops every member (SIGTERM, wait, SIGKILL) and deletes the data dirs. Idempotent. */
  stop(): Promise<void>;
}

/** Finds a free TCP port on 127.0.0.1 (bind port 0, read it, release it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address === null || typeof address === "string") reject(new Error("no port assigned"));
        else resolve(address.port);
      });
    });
  });
}

class Member implements EtcdMember {
  process: ChildProcess | undefined;
  exited: Promise<void> = Promise.resolve();
  stderrTail = "";

  constructor(
    readonly name: string,
    readonly clientUrl: string,
    readonly peerUrl: string,
    readonly dataDir: string,
    /** Where /health answers: the client URL, or a plain-http metrics URL with TLS. */
    readonly healthUrl: string,
  ) {}

  get pid(): number | undefined {
    return this.process?.pid;
  }
  get running(): boolean {
    return this.process !== undefined && this.process.exitCode === null && this.process.signalCode === null;
  }
}

/** Starts a single etcd member. */
export function startEtcd(options: EtcdMemberOptions = {}): Promise<EtcdCluster> {
  return startEtcdCluster(1, options);
}

/** Starts an etcd cluster of `size` members on loopback and waits until it is healthy. */
export async function startEtcdCluster(size = 3, options: EtcdMemberOptions = {}): Promise<EtcdCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startCluster(size, options);
    } catch (error) {
      // A port found free was taken (by another test process) before etcd bound it: new ports.
      if (attempt >= 3 || !(error as Error).message.includes("address already in use")) throw error;
    }
  }
}

async function startCluster(size: number, options: EtcdMemberOptions): Promise<EtcdCluster> {
  const root = await mkdtemp(join(tmpdir(), "atomix-etcd-"));
  const members: Member[] = [];
  let certs: Certificates | undefined;
  try {
    certs = options.tls === true ? await makeCertificates(root) : undefined;
  } catch (error) {
    await rm(root, { recursive: true, force: true });
    throw error;
  }
  for (let i = 0; i < size; i++) {
    const clientPort = await freePort();
    const peerPort = await freePort();
    const client = `${certs === undefined ? "http" : "https"}://127.0.0.1:${clientPort}`;
    const health = certs === undefined ? client : `http://127.0.0.1:${await freePort()}`;
    members.push(new Member(`m${i}`, client, `http://127.0.0.1:${peerPort}`, join(root, `m${i}`), health));
  }
  const cluster = new Cluster(members, root, options, certs);
  try {
    for (let i = 0; i < size; i++) cluster.launch(i, "new");
    await cluster.waitHealthy();
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

class Cluster implements EtcdCluster {
  private stopped = false;

  constructor(
    readonly members: Member[],
    private readonly root: string,
    private readonly options: EtcdMemberOptions,
    private readonly certs: Certificates | undefined,
  ) {}

  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  get tls(): EtcdClientTls | undefined {
    return this.certs?.client;
  }

  launch(index: number, state: "new" | "existing"): void {
    const member = this.members[index]!;
    const initialCluster = this.members.map((m) => `${m.name}=${m.peerUrl}`).join(",");
    const args = [
      `--name=${member.name}`,
      `--data-dir=${member.dataDir}`,
      `--listen-client-urls=${member.clientUrl}`,
      `--advertise-client-urls=${member.clientUrl}`,
      `--listen-peer-urls=${member.peerUrl}`,
      `--initial-advertise-peer-urls=${member.peerUrl}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-state=${state}`,
      `--initial-cluster-token=atomix-${process.pid}`,
      `--heartbeat-interval=${this.options.heartbeatIntervalMs ?? 50}`,
      `--election-timeout=${this.options.electionTimeoutMs ?? 500}`,
      "--logger=zap",
      "--log-outputs=stderr",
      "--log-level=warn",
      ...(this.certs === undefined
        ? []
        : [
            `--cert-file=${this.certs.serverCertFile}`,
            `--key-file=${this.certs.serverKeyFile}`,
            `--trusted-ca-file=${this.certs.caFile}`,
            "--client-cert-auth",
            `--listen-metrics-urls=${member.healthUrl}`,
          ]),
      ...(this.options.extraArgs ?? []),
    ];
    const child = spawn(this.options.binary ?? process.env["ETCD_BIN"] ?? "etcd", args, {
      stdio: ["ignore", "ignore", "pipe"],
    });
    member.process = child;
    member.stderrTail = "";
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      member.stderrTail = (member.stderrTail + chunk).slice(-4000);
    });
    killOnExit(child);
    member.exited = new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.once("error", (error) => {
        member.stderrTail += `\nspawn failed: ${error.message}`;
        resolve();
      });
    });
  }

  /** Waits until every running member answers /health with true, racing early exits. */
  async waitHealthy(): Promise<void> {
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 20_000);
    for (const member of this.members) {
      if (member.process === undefined) continue;
      for (;;) {
        if (!member.running) {
          throw new Error(`etcd member ${member.name} exited during start-up:\n${member.stderrTail}`);
        }
        if (await healthy(member.healthUrl)) break;
        if (Date.now() > deadline) throw new Error(`etcd member ${member.name} not healthy in time:\n${member.stderrTail}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    }
  }

  async kill(index: number): Promise<void> {
    const member = this.member(index);
    if (!member.running) return;
    member.process!.kill("SIGKILL");
    await member.exited;
    member.process = undefined;
  }

  async restart(index: number): Promise<void> {
    const member = this.member(index);
    if (member.running) throw new Error(`member ${member.name} is running`);
    this.launch(index, "existing");
    await this.waitHealthy();
  }

  async leaderIndex(): Promise<number> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ids = new Map<string, number>();
      let leader: string | undefined;
      for (let i = 0; i < this.members.length; i++) {
        const member = this.members[i]!;
        if (!member.running) continue;
        const status = await statusOf(member.clientUrl);
        if (status === undefined) continue;
        ids.set(status.memberId, i);
        if (status.leader !== "0") leader = status.leader;
      }
      const index = leader === undefined ? undefined : ids.get(leader);
      if (index !== undefined) return index;
      if (Date.now() > deadline) throw new Error("no etcd leader found");
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.members.map((m) => stopMember(m)));
    await rm(this.root, { recursive: true, force: true });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  private member(index: number): Member {
    const member = this.members[index];
    if (member === undefined) throw new Error(`no member ${index}`);
    return member;
  }
}

/** SIGTERM, wait up to 3 s (the last member of a cluster can hang), then SIGKILL. */
async function stopMember(member: Member): Promise<void> {
  const child = member.process;
  if (child === undefined || !member.running) return;
  child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const exited = await Promise.race([
    member.exited.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), 3000);
    }),
  ]).finally(() => clearTimeout(timer));
  if (!exited) {
    child.kill("SIGKILL");
    await member.exited;
  }
  member.process = undefined;
}

async function healthy(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
    const body = (await response.json()) as { health?: string };
    return body.health === "true";
  } catch {
    return false;
  }
}

/** The member's id and its view of the leader, as decimal strings (the gRPC gateway's JSON). */
async function statusOf(clientUrl: string): Promise<{ memberId: string; leader: string } | undefined> {
  try {
    const response = await fetch(`${clientUrl}/v3/maintenance/status`, {
      method: "POST",
      body: "{}",
      signal: AbortSignal.timeout(1000),
    });
    const body = (await response.json()) as { header?: { member_id?: string }; leader?: string };
    if (body.header?.member_id === undefined) return undefined;
    return { memberId: body.header.member_id, leader: body.leader ?? "0" };
  } catch {
    return undefined;
  }
}

/** Members still running; a process that dies without stop() (an uncaught error) kills them. */
const running = new Set<ChildProcess>();

function killOnExit(child: ChildProcess): void {
  if (!process.listeners("exit").includes(killRunning)) process.on("exit", killRunning);
  running.add(child);
  child.once("exit", () => running.delete(child));
}

function killRunning(): void {
  for (const child of running) child.kill("SIGKILL");
}

/**
 * Turns on etcd's password authentication through `etcdctl` (Debian package etcd-client): adds
 * the user `root` with `password` and the root role, then `auth enable`. From then on every
 * client needs `auth: { username: "root", password }`.
 */
export async function enableAuth(endpoint: string, password: string): Promise<void> {
  const etcdctl = (...args: string[]): Promise<void> =>
    new Promise((resolve, reject) => {
      execFile("etcdctl", [`--endpoints=${endpoint}`, ...args], { env: { ...process.env, ETCDCTL_API: "3" } }, (error, _stdout, stderr) => {
        if (error === null) resolve();
        else reject(new Error(`etcdctl ${args[0]} failed (Debian package etcd-client): ${stderr || error.message}`));
      });
    });
  await etcdctl("user", "add", `root:${password}`, "--interactive=false");
  await etcdctl("user", "grant-role", "root", "root");
  await etcdctl("auth", "enable");
}

interface Certificates {
  readonly caFile: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  readonly client: EtcdClientTls;
}

/** A throwaway CA, a server certificate for 127.0.0.1 and a client certificate (P-256 keys). */
async function makeCertificates(root: string): Promise<Certificates> {
  const file = (name: string): string => join(root, name);
  const openssl = (...args: string[]): Promise<void> =>
    new Promise((resolve, reject) => {
      execFile("openssl", args, { cwd: root }, (error, _stdout, stderr) => {
        if (error === null) resolve();
        else reject(new Error(`openssl ${args[0]} failed (Debian package openssl): ${stderr || error.message}`));
      });
    });
  const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl("req", "-x509", ...key, "-keyout", file("ca.key"), "-out", file("ca.crt"), "-days", "2", "-subj", "/CN=atomix test CA");
  for (const [name, usage] of [
    ["server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth"],
    ["client", "extendedKeyUsage=clientAuth"],
  ] as const) {
    await writeFile(file(`${name}.ext`), usage);
    await openssl("req", ...key, "-keyout", file(`${name}.key`), "-out", file(`${name}.csr`), "-subj", `/CN=atomix test ${name}`);
    await openssl("x509", "-req", "-in", file(`${name}.csr`), "-CA", file("ca.crt"), "-CAkey", file("ca.key"), "-CAcreateserial", "-out", file(`${name}.crt`), "-days", "2", "-extfile", file(`${name}.ext`));
  }
  return {
    caFile: file("ca.crt"),
    serverCertFile: file("server.crt"),
    serverKeyFile: file("server.key"),
    client: { ca: await readFile(file("ca.crt")), cert: await readFile(file("client.crt")), key: await readFile(file("client.key")) },
  };
}
