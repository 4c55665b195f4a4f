import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { computePolicyDigest, createPolicyJsonSchema, parsePolicy } from './policy.ts';

// biome-ignore lint/suspicious/noExplicitAny: the tests mutate arbitrary parts of a JSON value
type Json = any;

const SCHEMA_FILE = resolve(import.meta.dirname, '..', '..', 'docs', 'policy.schema.json');

function createValidPolicyInput(): Record<string, unknown> {
  return {
    version: 1,
    consortium: 'hospitals-eu',
    members: {
      operator: { roles: ['coordinator-operator'] },
      'hospital-a': { roles: ['institution', 'data-steward'], witnessKey: 'hospital-a+1a2b3c4d+AQIDBA==' },
      'hospital-b': { roles: ['institution'] },
      'hospital-c': { roles: ['institution'] },
      auditor: { roles: ['auditor'] },
      press: { roles: ['observer'] },
    },
    exchange: {
      tensors: 'model-deltas',
      metrics: ['accuracy', 'loss'],
      maxRounds: 50,
      minParticipantsPerRound: 3,
      secureAggregation: 'required',
      differentialPrivacy: { required: true, minNoiseMultiplier: 0.8, maxEpsilon: 8, delta: 1e-6 },
      clipping: { maxClipNorm: 1 },
      dataSchemaDigests: ['a'.repeat(64)],
    },
    agreements: [
      { id: 'dua-2025-01', kind: 'data-use', sha256: 'b'.repeat(64) },
      { id: 'consent-v3', kind: 'consent', sha256: 'c'.repeat(64) },
    ],
    approvals: {
      adoptPolicy: {
        all: [{ of: 2, members: ['hospital-a', 'hospital-b', 'hospital-c'] }, { member: 'auditor' }],
      },
      admitMember: { of: 2, members: ['hospital-a', 'hospital-b', 'hospital-c'] },
      startRun: {
        of: 2,
        members: ['hospital-a', { of: 1, members: ['hospital-b', 'hospital-c'] }, 'operator'],
      },
      releaseModel: { all: [{ member: 'auditor' }, { of: 1, members: ['hospital-a', 'hospital-b'] }] },
    },
  };
}

/** Runs parsePolicy on a mutated copy of the valid input and returns the error it must throw. */
function parseError(mutate: (p: Record<string, Json>) => void): EntenteError {
  const input = structuredClone(createValidPolicyInput());
  mutate(input);
  try {
    parsePolicy(input);
  } catch (err) {
    assert.ok(err instanceof EntenteError);
    assert.equal(err.code, 'INVALID_CONFIG');
    return err;
  }
  assert.fail('parsePolicy accepted an invalid policy');
}

describe('parsePolicy', () => {
  it('accepts a valid policy and freezes it', () => {
    const policy = parsePolicy(createValidPolicyInput());
    assert.equal(policy.consortium, 'hospitals-eu');
    assert.deepEqual(policy.members['hospital-a']?.roles, ['institution', 'data-steward']);
    assert.equal(policy.exchange.differentialPrivacy.maxEpsilon, 8);
    assert.ok(Object.isFrozen(policy) && Object.isFrozen(policy.exchange.dataSchemaDigests));
    assert.throws(() => {
      (policy.members as Record<string, unknown>).intruder = { roles: ['institution'] };
    }, TypeError);
  });

  it('accepts an optional approvals.resumeAfterIncident rule, absent by default', () => {
    assert.equal(parsePolicy(createValidPolicyInput()).approvals.resumeAfterIncident, undefined);
    const input = structuredClone(createValidPolicyInput()) as Record<string, Json>;
    input.approvals.resumeAfterIncident = { all: [{ member: 'auditor' }, { member: 'operator' }] };
    const policy = parsePolicy(input);
    assert.deepEqual(policy.approvals.resumeAfterIncident, {
      all: [{ member: 'auditor' }, { member: 'operator' }],
    });
    assert.ok(Object.isFrozen(policy.approvals.resumeAfterIncident));
    assert.notEqual(computePolicyDigest(policy), computePolicyDigest(parsePolicy(createValidPolicyInput())));
  });

  it('names the dotted path of a single mistake', () => {
    const cases: Array<[(p: Record<string, Json>) => void, string]> = [
      [(p) => (p.exchange.minParticipantsPerRound = 2), 'policy.exchange.minParticipantsPerRound'],
      [(p) => (p.exchange.tensors = 'gradients'), 'policy.exchange.tensors'],
      [(p) => delete p.exchange.secureAggregation, 'policy.exchange.secureAggregation'],
      [(p) => (p.exchange.dataSchemaDigests = ['ABC']), 'policy.exchange.dataSchemaDigests.0'],
      [(p) => (p.members.press.roles = ['viewer']), 'policy.members.press.roles.0'],
      [(p) => (p.members['hospital-a'].witnessKey = 'not a key'), 'policy.members.hospital-a.witnessKey'],
      [(p) => (p.members.Bad_ID = { roles: ['observer'] }), 'policy.members.Bad_ID'],
      [(p) => (p.agreements[1].kind = 'contract'), 'policy.agreements.1.kind'],
      [(p) => (p.agreements[1].id = 'dua-2025-01'), 'policy.agreements.1.id'],
      [(p) => (p.approvals.releaseModel.extra = true), 'policy.approvals.releaseModel.extra'],
      [
        (p) => (p.approvals.startRun.members[1].members[0] = 7),
        'policy.approvals.startRun.members.1.members.0',
      ],
      [(p) => (p.approvals.adoptPolicy.all[1] = { member: 42 }), 'policy.approvals.adoptPolicy.all.1.member'],
      [(p) => (p.approvals.admitMember.members[2] = 'hospital-a'), 'policy.approvals.admitMember.members.2'],
      [(p) => (p.approvals.adoptPolicy.all[0].of = 4), 'policy.approvals.adoptPolicy.all.0.of'],
      [(p) => delete p.exchange.differentialPrivacy.delta, 'policy.exchange.differentialPrivacy.delta'],
      [(p) => (p.approvals.startRun.members[0] = 'hospital-z'), 'policy.approvals.startRun.members.0'],
      [
        (p) => (p.approvals.releaseModel.all[0].member = 'ghost'),
        'policy.approvals.releaseModel.all.0.member',
      ],
      [(p) => (p.members.operator.roles = ['auditor']), 'policy.members'],
      [
        (p) => (p.approvals.resumeAfterIncident = { of: 1, members: ['hospital-a', 'ghost'] }),
        'policy.approvals.resumeAfterIncident.members.1',
      ],
      [
        (p) => (p.approvals.resumeAfterIncident = { of: 3, members: ['hospital-a', 'auditor'] }),
        'policy.approvals.resumeAfterIncident.of',
      ],
      [
        (p) => (p.approvals.resumeAfterIncident = { member: 7 }),
        'policy.approvals.resumeAfterIncident.member',
      ],
    ];
    for (const [mutate, field] of cases) {
      const err = parseError(mutate);
      assert.equal(err.field, field, err.message);
      assert.equal(err.message.split('\n').length, 1, err.message);
      assert.ok(err.message.startsWith(`${field}: `), err.message);
    }
  });

  it('reports every mistake, one per line, with field = the first', () => {
    const err = parseError((p) => {
      p.version = 0;
      p.exchange.unknownSetting = 1;
      p.exchange.minParticipantsPerRound = 1;
      p.approvals.startRun = { of: 3, members: ['hospital-a', 'nobody'] };
      delete p.members['hospital-b'].roles;
      p.members['hospital-c'].roles = ['observer'];
      p.members['hospital-a'].roles = ['auditor'];
    });
    const lines = err.message.split('\n');
    assert.equal(err.field, 'policy.version');
    for (const field of [
      'policy.version',
      'policy.members.hospital-b.roles',
      'policy.exchange.unknownSetting',
      'policy.exchange.minParticipantsPerRound',
      'policy.approvals.startRun.of',
      'policy.approvals.startRun.members.1',
      'policy.members',
    ])
      assert.ok(
        lines.some((l) => l.startsWith(`${field}: `)),
        `missing ${field} in:\n${err.message}`,
      );
    assert.match(err.message, /at least one member with role "institution"/);
    assert.match(err.message, /"nobody", who is not in policy\.members/);
    assert.equal(lines.length, 7, err.message);
  });

  it('refuses a value that is not an object, and lists each missing section', () => {
    assert.throws(() => parsePolicy('version: 1'), { code: 'INVALID_CONFIG', field: 'policy' });
    const err = parseError((p) => {
      for (const key of Object.keys(p)) delete p[key];
    });
    assert.equal(err.message.split('\n').length, 6, err.message);
    assert.match(err.message, /^policy\.version: is required$/m);
  });
});

describe('computePolicyDigest', () => {
  it('is the SHA-256 of the canonical JSON: independent of key order, sensitive to any change', () => {
    const input = createValidPolicyInput();
    const digest = computePolicyDigest(parsePolicy(input));
    assert.match(digest, /^[0-9a-f]{64}$/);
    const reordered = Object.fromEntries(Object.entries(input).reverse());
    assert.equal(computePolicyDigest(parsePolicy(reordered)), digest);
    const changed = structuredClone(input) as { exchange: { maxRounds: number } };
    changed.exchange.maxRounds = 51;
    assert.notEqual(computePolicyDigest(parsePolicy(changed)), digest);
  });

  it('hashes exactly the RFC 8785 text (hand-written vector)', () => {
    const zeros = '0'.repeat(64);
    const only = { member: 'op' };
    const policy = parsePolicy({
      version: 1,
      consortium: 'c',
      members: { op: { roles: ['coordinator-operator', 'institution'] } },
      exchange: {
        tensors: 'model-weights',
        metrics: [],
        maxRounds: 1,
        minParticipantsPerRound: 3,
        secureAggregation: 'optional',
        differentialPrivacy: { required: false },
        clipping: {},
        dataSchemaDigests: [zeros],
      },
      agreements: [],
      approvals: { adoptPolicy: only, admitMember: only, startRun: only, releaseModel: only },
    });
    const text =
      '{"agreements":[],"approvals":{"admitMember":{"member":"op"},"adoptPolicy":{"member":"op"},' +
      '"releaseModel":{"member":"op"},"startRun":{"member":"op"}},"consortium":"c","exchange":{"clipping":{},' +
      `"dataSchemaDigests":["${zeros}"],"differentialPrivacy":{"required":false},"maxRounds":1,"metrics":[],` +
      '"minParticipantsPerRound":3,"secureAggregation":"optional","tensors":"model-weights"},' +
      '"members":{"op":{"roles":["coordinator-operator","institution"]}},"version":1}';
    assert.equal(computePolicyDigest(policy), createHash('sha256').update(text).digest('hex'));
    assert.equal(
      computePolicyDigest(policy),
      '407e8e3e53d7c944e1e7c534f2784e69f80721874b81977de6968a9df79622a2',
    );
  });
});

describe('docs/policy.schema.json', () => {
  it('equals the JSON Schema generated from the zod schema (ENTENTE_UPDATE_SCHEMA=1 rewrites it)', () => {
    const generated = `${JSON.stringify(createPolicyJsonSchema(), null, 2)}\n`;
    if (process.env.ENTENTE_UPDATE_SCHEMA === '1') writeFileSync(SCHEMA_FILE, generated);
    assert.equal(readFileSync(SCHEMA_FILE, 'utf8'), generated);
  });

  it('publishes the structure: required sections, strict objects, the recursive quorum rule', () => {
    const schema = createPolicyJsonSchema() as {
      required: string[];
      additionalProperties: boolean;
      $defs: Record<string, unknown>;
    };
    assert.deepEqual([...schema.required].sort(), [
      'agreements',
      'approvals',
      'consortium',
      'exchange',
      'members',
      'version',
    ]);
    assert.equal(schema.additionalProperties, false);
    assert.ok(schema.$defs.QuorumRule);
    const approvals = (
      schema as unknown as {
        properties: { approvals: { required: string[]; properties: Record<string, Json> } };
      }
    ).properties.approvals;
    assert.deepEqual([...approvals.required].sort(), [
      'admitMember',
      'adoptPolicy',
      'releaseModel',
      'startRun',
    ]);
    assert.equal(approvals.properties.resumeAfterIncident.$ref, '#/$defs/QuorumRule');
    assert.match(approvals.properties.resumeAfterIncident.description, /adoptPolicy/);
    assert.match(JSON.stringify(schema.$defs.QuorumRule), /"\$ref":"#\/\$defs\/QuorumRule"/);
  });
});

describe('docs/policy.example.yaml', () => {
  it('is a valid policy (the example in the docs parses, with nested quorum rules)', async () => {
    const { parse } = await import('yaml');
    const text = readFileSync(
      resolve(import.meta.dirname, '..', '..', 'docs', 'policy.example.yaml'),
      'utf8',
    );
    const policy = parsePolicy(parse(text));
    assert.equal(policy.consortium, 'hospitals-eu');
    assert.deepEqual(policy.members['audit-office']?.roles, ['auditor']);
    assert.ok('all' in policy.approvals.adoptPolicy);
  });
});
