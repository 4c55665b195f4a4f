/**
 * Which data schema a run's sites follow. Every participant states the digest of its data schema
 * (SHA-256 of the schema's canonical JSON, data/schema.ts) when it registers; before a run's first
 * phase the coordinator requires every available site to follow the run's schema (the one the run
 * names) or, when the run names none, one schema shared by all of them. Two sites whose label classes
 * are declared in different orders have different digests: their class indices mean different things,
 * and averaging their models silently costs accuracy. The dry run (`run plan`) applies the same rule.
 */

export interface SchemaAgreement {
  readonly ok: boolean;
  /** The digest the run's tasks carry: the run's own, or the one every site shares (undefined: none known). */
  readonly digest?: string | undefined;
  /** When not ok: what differs, naming each site and digest. */
  readonly message: string;
  /** Sites whose digest is not the run's (or, without one, that do not all agree). */
  readonly mismatched: readonly string[];
}

const show = (digest: string | undefined): string => digest ?? '(none stated)';

/**
 * Checks the sites' registered digests (`sites`: institution → digest, undefined when it stated none)
 * against `runDigest` (the digest the run names) or, without one, against each other.
 */
export function checkSchemaAgreement(
  runDigest: string | undefined,
  sites: ReadonlyMap<string, string | undefined>,
): SchemaAgreement {
  const ids = [...sites.keys()].sort();
  if (runDigest !== undefined) {
    const mismatched = ids.filter((id) => sites.get(id) !== runDigest);
    if (mismatched.length === 0)
      return { ok: true, digest: runDigest, mismatched, message: `every site follows schema ${runDigest}` };
    return {
      ok: false,
      digest: runDigest,
      mismatched,
      message: `the run requires data schema ${runDigest}; ${mismatched
        .map((id) => `${id} follows ${show(sites.get(id))}`)
        .join(', ')}`,
    };
  }
  const groups = new Map<string | undefined, string[]>();
  for (const id of ids) groups.set(sites.get(id), [...(groups.get(sites.get(id)) ?? []), id]);
  if (groups.size <= 1) {
    const digest = ids.length > 0 ? sites.get(ids[0]!) : undefined;
    return {
      ok: true,
      digest,
      mismatched: [],
      message:
        digest === undefined
          ? 'no site stated a data schema digest'
          : `the run names no data schema; every site follows ${digest}`,
    };
  }
  return {
    ok: false,
    digest: undefined,
    mismatched: ids,
    message: `the sites follow different data schemas (the run names none): ${[...groups]
      .map(
        ([digest, members]) =>
          `${members.join(', ')} ${members.length === 1 ? 'follows' : 'follow'} ${show(digest)}`,
      )
      .join('; ')}`,
  };
}
