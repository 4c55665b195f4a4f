/**
 * The model registry's commands: `entente model list` (every model version with its lineage and the
 * aliases pointing at it), `model show <version|alias>` (one version and its model-card section:
 * evaluations with their plans, privacy spent, intended use), `model diff <a> <b>` (lineage fields that
 * differ and, where both models may be fetched, per-tensor shapes, L2 distance and largest absolute
 * difference) and `model alias propose|sign|list` (aliases move only by a move-alias quorum). The
 * registry is read from the coordinator (GET /v1/registry/…) or, with --workspace when no coordinator
 * runs there, from the workspace's own audit log (the registry is a view of it).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { parseLogEntry } from '../audit/index.ts';
import { EntenteError } from '../core/errors.ts';
import { decodeSafetensors } from '../core/safetensors.ts';
import { sha256Hex } from '../crypto/index.ts';
import { MAX_PARAMETERS } from '../models/index.ts';
import {
  aliasesOf,
  buildRegistryCardSection,
  buildRegistryView,
  diffModelVersions,
  isAliasName,
  type ModelDiff,
  type ModelVersion,
  parseAliasName,
  type RegistryCardSection,
  type RegistryEntry,
  resolveVersion,
} from '../registry/index.ts';
import { openWorkspace, SqliteStore } from '../storage/index.ts';
import type { MtlsClient } from '../transport/index.ts';
import { addMemberOptions, type MemberOptions, openMember, signProposalAs } from './governance-commands.ts';

type ListedVersion = ModelVersion & { aliases: string[] };
interface RegistryList {
  versions: ListedVersion[];
  aliases: { alias: string; version: string; entry: number; proposal: string }[];
}
interface VersionDetail {
  version: ListedVersion;
  card: RegistryCardSection;
}

/** The registry replayed from a stopped workspace's own audit log. */
function readOfflineRegistry(workspace: string) {
  const ws = openWorkspace(workspace);
  const dbPath = join(ws.coordinatorStateDir(), 'coordinator.db');
  // A workspace whose coordinator never started has an empty log: no versions, no aliases.
  if (!existsSync(dbPath)) return { entries: [], view: buildRegistryView([]) };
  const store = new SqliteStore(dbPath, { readonly: true });
  try {
    const entries = store
      .listLogEntries()
      .map((e) => parseLogEntry(new Uint8Array(e.body), `entry ${e.idx}`) as unknown as RegistryEntry);
    return { entries, view: buildRegistryView(entries) };
  } finally {
    store.close();
  }
}

/** Runs `online` against the coordinator; with --workspace and no coordinator running, `offline`. */
async function fromRegistry<T>(
  opts: MemberOptions,
  online: (client: MtlsClient) => Promise<T>,
  offline: (r: ReturnType<typeof readOfflineRegistry>) => T,
): Promise<T> {
  try {
    const m = openMember(opts);
    try {
      return await online(m.client);
    } finally {
      await m.client.close();
    }
  } catch (err) {
    if (!(err instanceof EntenteError && err.code === 'UNAVAILABLE' && opts.workspace && !opts.site))
      throw err;
    return offline(readOfflineRegistry(opts.workspace));
  }
}

/** The registry section of `ref`'s model card (online or offline). */
export async function readVersionDetail(opts: MemberOptions, ref: string): Promise<VersionDetail> {
  return fromRegistry(
    opts,
    async (client) =>
      (await client.getJson<VersionDetail>(`/v1/registry/models/${encodeURIComponent(ref)}`)).body!,
    ({ entries, view }) => {
      const version = resolveVersion(view, ref, 'version');
      return {
        version: { ...version, aliases: aliasesOf(view, version.id) },
        card: buildRegistryCardSection({
          version,
          entries,
          plans: view.plans,
          runConfig: view.runConfigs.get(version.run),
          aliases: view.aliases,
        }),
      };
    },
  );
}

/** Every version with its aliases, and the alias table (online or offline). */
function readRegistryList(opts: MemberOptions): Promise<RegistryList> {
  return fromRegistry<RegistryList>(
    opts,
    async (client) => (await client.getJson<RegistryList>('/v1/registry/models')).body!,
    ({ view }) => ({
      versions: view.versions.map((v) => ({ ...v, aliases: aliasesOf(view, v.id) })),
      aliases: view.aliases.map((a) => ({
        alias: a.alias,
        version: a.version,
        entry: a.since.entry,
        proposal: a.since.proposal,
      })),
    }),
  );
}

/**
 * The version alias `name` points at now (online, or from the workspace's own log when its coordinator
 * is stopped). INVALID_ARGUMENT for a malformed name, NOT_FOUND naming --alias when no such alias.
 */
export async function resolveAliasTarget(opts: MemberOptions, name: string): Promise<ModelVersion> {
  if (!isAliasName(name))
    throw new EntenteError('INVALID_ARGUMENT', "--alias: must be 1 to 40 characters of a-z, 0-9 and '-'", {
      field: 'alias',
    });
  const list = await readRegistryList(opts);
  const alias = list.aliases.find((a) => a.alias === name);
  const version = alias && list.versions.find((v) => v.id === alias.version);
  if (!version)
    throw new EntenteError(
      'NOT_FOUND',
      `--alias: no alias "${name}" in the registry (model alias list shows them; aliases move only by a move-alias quorum)`,
      { field: 'alias' },
    );
  return version;
}

const short = (sha: string | null): string => (sha ? `${sha.slice(0, 12)}…` : '-');

function formatList(list: RegistryList): string {
  if (list.versions.length === 0) return 'no model versions yet';
  const lines = ['version        kind      run                  round  parent         aliases'];
  for (const v of list.versions)
    lines.push(
      `${short(v.id).padEnd(14)} ${v.kind.padEnd(9)} ${v.run.slice(0, 20).padEnd(20)} ${String(v.round).padStart(5)}  ${short(v.parent).padEnd(14)} ${v.aliases.join(', ')}`,
    );
  return lines.join('\n');
}

function formatDetail(d: VersionDetail): string {
  const v = d.version;
  const c = d.card;
  const lines = [
    `model version ${v.id}`,
    `  kind ${v.kind}, run ${v.run}, round ${v.round}${v.aliases.length > 0 ? `; aliases: ${v.aliases.join(', ')}` : ''}`,
    `  parent ${v.parent ?? '(none)'}`,
    `  policy ${v.policySha256 ?? '(none)'}`,
    `  run config ${v.configSha256 ?? '(unknown)'}`,
    `  data schema ${v.dataSchemaDigest ?? '(not fixed by the run)'}`,
    `  model spec ${v.modelSpecSha256 ?? '(unknown)'}`,
    `  provenance ${v.provenanceSha256 ?? '(none: an initial model)'}`,
    `  audit-log entry ${v.entry}${v.releaseEntry !== null ? `, release approved at entry ${v.releaseEntry}` : ''}`,
    `  intended use: ${c.intendedUse ?? '(not stated by the run)'}`,
    `  privacy spent: ${c.privacy.sites.length === 0 ? 'no privacy events recorded' : `max ε ${c.privacy.maxEpsilonRun ?? 'unbounded'} over ${c.privacy.sites.length} sites`}`,
  ];
  for (const r of c.evaluations)
    lines.push(
      `  evaluation plan ${short(r.plan)} as ${r.label} ("${r.name}"): decision ${r.decision}; ${JSON.stringify(r.metrics)}`,
    );
  return lines.join('\n');
}

function formatDiff(d: ModelDiff, weightsNote: string | null): string {
  const lines = [`diff ${d.a} → ${d.b}`];
  if (d.lineage.length === 0) lines.push('  lineage: identical');
  for (const l of d.lineage) lines.push(`  ${l.field}: ${String(l.a)} → ${String(l.b)}`);
  if (d.tensors === null) lines.push(`  weights: ${weightsNote ?? 'not compared'}`);
  else {
    for (const t of d.tensors)
      lines.push(
        `  ${t.name}: shape ${t.shapeA ? `[${t.shapeA.join(', ')}]` : '-'} → ${t.shapeB ? `[${t.shapeB.join(', ')}]` : '-'}${t.l2 === null ? ' (not comparable)' : `, L2 ${t.l2.toPrecision(6)}, max |Δ| ${t.maxAbs!.toPrecision(6)}`}`,
      );
    lines.push(`  total: L2 ${d.total!.l2.toPrecision(6)}, max |Δ| ${d.total!.maxAbs.toPrecision(6)}`);
  }
  return lines.join('\n');
}

/**
 * The weights of `v` when the caller may fetch them: a run's final model through the released-model
 * route (its access rules apply). Undefined, with the reason, otherwise.
 */
async function fetchWeights(client: MtlsClient, v: ModelVersion) {
  try {
    const bytes = await client.getBytes(
      `/v1/runs/${encodeURIComponent(v.run)}/model`,
      MAX_PARAMETERS * 4 + 1024 * 1024,
    );
    if (sha256Hex(bytes) !== v.id) return { reason: `${short(v.id)} is not the final model of run ${v.run}` };
    return { weights: decodeSafetensors(bytes).weights };
  } catch (err) {
    if (err instanceof EntenteError && (err.code === 'FORBIDDEN' || err.code === 'NOT_FOUND'))
      return { reason: `${short(v.id)}: ${err.message}` };
    throw err;
  }
}

interface MoveProposalView {
  id: string;
  proposal: { kind: string };
  subject: { alias?: string; version?: string; previous?: string | null };
  status: string;
  missing: string;
  signers: string[];
}

const describeMove = (v: MoveProposalView): string =>
  `proposal ${v.id}\n  move alias "${v.subject.alias}" to ${v.subject.version} (from ${v.subject.previous ?? 'nothing'})\n  status ${v.status}${v.status === 'open' ? ` (needs ${v.missing})` : ''}; signed by ${v.signers.join(', ') || 'nobody yet'}`;

/** Adds `list`, `show`, `diff` and `alias propose|sign|list` to the `model` command group. */
export function registerRegistryCommands(model: Command): void {
  addMemberOptions(
    model
      .command('list')
      .description('every model version (initial, per round, released) with its lineage and aliases')
      .option('--json', 'print JSON'),
  ).action(async (opts: MemberOptions & { json?: boolean }) => {
    const list = await readRegistryList(opts);
    console.log(opts.json ? JSON.stringify(list) : formatList(list));
  });
  addMemberOptions(
    model
      .command('show')
      .description(
        'one model version (by digest, unique prefix or alias): lineage, evaluations, privacy, intended use',
      )
      .argument('<version>', 'version digest (or 8+ hex digits of it) or alias')
      .option('--json', 'print JSON'),
  ).action(async (ref: string, opts: MemberOptions & { json?: boolean }) => {
    const detail = await readVersionDetail(opts, ref);
    console.log(opts.json ? JSON.stringify(detail) : formatDetail(detail));
  });
  addMemberOptions(
    model
      .command('diff')
      .description('two model versions compared: lineage fields, and per tensor shape, L2 distance, max |Δ|')
      .argument('<a>', 'version digest, prefix or alias')
      .argument('<b>', 'version digest, prefix or alias')
      .option('--json', 'print JSON'),
  ).action(async (a: string, b: string, opts: MemberOptions & { json?: boolean }) => {
    const va = (await readVersionDetail(opts, a)).version;
    const vb = (await readVersionDetail(opts, b)).version;
    let note: string | null = null;
    let diff: ModelDiff;
    try {
      const m = openMember(opts);
      try {
        const [wa, wb] = [await fetchWeights(m.client, va), await fetchWeights(m.client, vb)];
        if (wa.weights && wb.weights) diff = diffModelVersions(va, vb, { a: wa.weights, b: wb.weights });
        else {
          note = `not available (${[wa.reason, wb.reason].filter(Boolean).join('; ')})`;
          diff = diffModelVersions(va, vb);
        }
      } finally {
        await m.client.close();
      }
    } catch (err) {
      if (!(err instanceof EntenteError && err.code === 'UNAVAILABLE')) throw err;
      note = 'not available (no coordinator is running)';
      diff = diffModelVersions(va, vb);
    }
    console.log(
      opts.json ? JSON.stringify({ ...diff, weights: note ?? 'compared' }) : formatDiff(diff, note),
    );
  });

  const alias = model
    .command('alias')
    .description('named aliases (candidate, canary, production, …), moved only by quorum');
  addMemberOptions(
    alias
      .command('propose')
      .description('propose pointing an alias at a model version (the move-alias quorum decides)')
      .argument('<name>', "alias: 1-40 of a-z, 0-9, '-'")
      .argument('<version>', 'version digest, unique prefix or another alias')
      .option('--sign', 'also sign it')
      .option('--json', 'print JSON'),
  ).action(
    async (name: string, version: string, opts: MemberOptions & { sign?: boolean; json?: boolean }) => {
      parseAliasName(name, 'name');
      const m = openMember(opts);
      try {
        let view = (
          await m.client.postJson<MoveProposalView>('/v1/proposals', {
            kind: 'move-alias',
            subject: { alias: name, version },
          })
        ).body;
        if (opts.sign)
          view = (await signProposalAs(
            m.client,
            view.id,
            m.id,
            m.signingKeyPem,
          )) as unknown as MoveProposalView;
        console.log(opts.json ? JSON.stringify(view) : describeMove(view));
      } finally {
        await m.client.close();
      }
    },
  );
  addMemberOptions(
    alias
      .command('sign')
      .description("sign the open proposal moving <name> to <version> with this member's identity key")
      .argument('<name>', 'alias')
      .argument('<version>', 'version digest or unique prefix the proposal moves it to')
      .option('--json', 'print JSON'),
  ).action(async (name: string, version: string, opts: MemberOptions & { json?: boolean }) => {
    parseAliasName(name, 'name');
    const m = openMember(opts);
    try {
      const all = (await m.client.getJson<{ proposals: MoveProposalView[] }>('/v1/proposals')).body!
        .proposals;
      const open = all.filter(
        (p) =>
          p.proposal.kind === 'move-alias' &&
          p.status === 'open' &&
          p.subject.alias === name &&
          typeof p.subject.version === 'string' &&
          p.subject.version.startsWith(version),
      );
      if (open.length === 0)
        throw new EntenteError('NOT_FOUND', `name: no open proposal moves alias "${name}" to ${version}`, {
          field: 'name',
        });
      if (open.length > 1)
        throw new EntenteError(
          'CONFLICT',
          `version: ${open.length} open proposals match; give more of the digest or use proposal sign <id>`,
          {
            field: 'version',
          },
        );
      const view = (await signProposalAs(
        m.client,
        open[0]!.id,
        m.id,
        m.signingKeyPem,
      )) as unknown as MoveProposalView;
      console.log(opts.json ? JSON.stringify(view) : describeMove(view));
    } finally {
      await m.client.close();
    }
  });
  addMemberOptions(
    alias
      .command('list')
      .description('each alias, the version it points at and its moves')
      .option('--json', 'print JSON'),
  ).action(async (opts: MemberOptions & { json?: boolean }) => {
    const r = await fromRegistry(
      opts,
      async (client) => (await client.getJson<{ aliases: unknown[] }>('/v1/registry/aliases')).body!,
      ({ view }) => ({
        aliases: view.aliases.map((a) => ({ alias: a.alias, version: a.version, history: a.history })),
      }),
    );
    if (opts.json) console.log(JSON.stringify(r));
    else {
      const rows = r.aliases as { alias: string; version: string; history: unknown[] }[];
      console.log(
        rows.length === 0
          ? 'no aliases'
          : rows.map((a) => `${a.alias.padEnd(20)} ${a.version}  (${a.history.length} moves)`).join('\n'),
      );
    }
  });
}
