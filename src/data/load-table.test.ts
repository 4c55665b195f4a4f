import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { loadTable } from './load-table.ts';
import { parseDataSchema } from './schema.ts';

const schemaOf = (overrides: Record<string, unknown> = {}) =>
  parseDataSchema({
    features: [
      { name: 'age', type: 'integer' },
      { name: 'sex', type: 'category', categories: ['F', 'M'] },
      { name: 'bmi', type: 'number' },
    ],
    label: { name: 'outcome', classes: ['no', 'yes'] },
    missing: 'reject',
    standardize: false,
    ...overrides,
  });

const HEADER = 'age,sex,bmi,outcome';
const table = (...rows: string[]) => [HEADER, ...rows].join('\n');

function rejects(text: string, field: string, message: string, schema = schemaOf()): void {
  assert.throws(
    () => loadTable(text, schema),
    (e: unknown) => {
      assert.ok(e instanceof EntenteError);
      assert.equal(e.code, 'INVALID_DATA');
      assert.equal(e.field, field);
      assert.equal(e.message, message);
      return true;
    },
  );
}

describe('loadTable', () => {
  it('accepts a trailing blank line', () => {
    assert.equal(loadTable(`${table('40,M,22.5,yes', '-3,F,1e1,no')}\n\n`, schemaOf()).count, 2);
  });

  it('names the delimiter a ";" or tab file seems to use, and reads it with that delimiter', () => {
    for (const [sep, named, flag] of [
      [';', '";"', ';'],
      ['\t', 'tab', 'tab'],
    ] as const) {
      const text = [HEADER, '40,M,22.5,yes', '-3,F,1e1,no'].map((l) => l.replaceAll(',', sep)).join('\n');
      assert.throws(
        () => loadTable(text, schemaOf()),
        (e: unknown) => {
          assert.ok(e instanceof EntenteError);
          assert.equal(e.code, 'INVALID_DATA');
          assert.match(
            e.message,
            new RegExp(
              `seems to use ${named} as its delimiter, not "," \\(say so with --delimiter ${flag}\\)`,
            ),
          );
          return true;
        },
      );
      const d = loadTable(text, schemaOf(), { delimiter: sep });
      assert.deepEqual([...d.y], [1, 0]);
      assert.equal(d.x[0], 40);
    }
  });

  it('encodes numbers, integers, one-hot categories and class indices in file order', () => {
    const d = loadTable(table('40,M,22.5,yes', '-3,F,1e1,no', '+7,M,.5,no'), schemaOf());
    assert.equal(d.count, 3);
    assert.equal(d.dim, 4);
    assert.deepEqual(d.featureNames, ['age', 'sex=F', 'sex=M', 'bmi']);
    assert.deepEqual([...d.x], [40, 0, 1, 22.5, -3, 1, 0, 10, 7, 0, 1, 0.5]);
    assert.deepEqual([...d.y], [1, 0, 0]);
  });

  it('accepts columns in any order and ignored extra columns', () => {
    const d = loadTable('id,outcome,bmi,sex,age\n9,no,1.5,F,2\n', schemaOf({ ignore: ['id'] }));
    assert.deepEqual([...d.x], [2, 1, 0, 1.5]);
  });

  it('names the column and 1-based data row of every bad cell', () => {
    rejects(table('1,F,2,no', '1,F,abc,no'), 'bmi', 'row 2, column "bmi": "abc" is not a number');
    rejects(
      table('1,F,2,no', '1,F,2,no', '2.5,F,2,no'),
      'age',
      'row 3, column "age": "2.5" is not an integer',
    );
    rejects(table('1,X,2,no'), 'sex', 'row 1, column "sex": "X" is not a declared category');
    rejects(
      table('1,F,2,no', '1,F,2,maybe'),
      'outcome',
      'row 2, column "outcome": "maybe" is not a declared class',
    );
    rejects(
      table('1,F,2,no', '1,F,,no'),
      'bmi',
      `row 2, column "bmi": missing value (the schema's missing policy is 'reject')`,
    );
    rejects(table('1,F,1e39,no'), 'bmi', 'row 1, column "bmi": "1e39" is outside the float32 range');
    rejects(table('1,f,2,no'), 'sex', 'row 1, column "sex": "f" is not a declared category');
  });

  it('rejects NaN, Infinity, hex, whitespace and other non-decimal literals', () => {
    for (const bad of ['NaN', 'Infinity', '-Infinity', '0x10', ' 1', '1 ', '1e', '.', '-', '1,5', '1_000']) {
      const cell = bad.includes(',') ? `"${bad}"` : bad;
      rejects(table(`1,F,${cell},no`), 'bmi', `row 1, column "bmi": ${JSON.stringify(bad)} is not a number`);
    }
  });

  it('truncates long offending cells in messages', () => {
    const long = 'x'.repeat(100);
    rejects(table(`1,F,${long},no`), 'bmi', `row 1, column "bmi": "${'x'.repeat(40)}…" is not a number`);
  });

  it('checks the header', () => {
    rejects(
      'age,sex,outcome\n1,F,no',
      'bmi',
      'column "bmi": is declared but not in the header (missing: "bmi")',
    );
    rejects(
      'age,sex,bmi,outcome,id,zip\n1,F,2,no,3,4',
      'id',
      'column "id": is not declared in the schema (undeclared: "id", "zip"; list them in "ignore" to skip them)',
    );
    rejects(
      'age,sex,bmi,outcome,age\n1,F,2,no,1',
      'age',
      'column "age": appears more than once in the header',
    );
    rejects('age,sex,bmi,outcome,\n1,F,2,no,', 'header', 'header: column 5 has an empty name');
  });

  it('rejects tables without rows', () => {
    assert.throws(() => loadTable(HEADER, schemaOf()), /no data rows/);
    assert.throws(() => loadTable('', schemaOf()), /empty file/);
  });

  it("drops rows with a missing value under 'drop-row'", () => {
    const d = loadTable(table('1,F,2,no', '2,,3,yes', '3,M,4,'), schemaOf({ missing: 'drop-row' }));
    assert.equal(d.count, 1);
    assert.equal(d.x.length, 4);
    assert.deepEqual([...d.y], [0]);
    const na = loadTable(
      table('1,F,2,no', '4,M,NA,yes'),
      schemaOf({ missing: 'drop-row', missingTokens: ['NA'] }),
    );
    assert.equal(na.count, 1);
    assert.throws(() => loadTable(table('1,F,,no'), schemaOf({ missing: 'drop-row' })), /all were dropped/);
  });

  it("imputes local column means under 'impute-mean' (category -> frequencies)", () => {
    const d = loadTable(
      table('1,F,2,no', '3,M,,yes', ',M,6,yes', '4,,4,no'),
      schemaOf({ missing: 'impute-mean' }),
    );
    assert.equal(d.count, 4);
    const col = (j: number) => [0, 1, 2, 3].map((i) => d.x[i * 4 + j]);
    assert.deepEqual(col(0), [1, 3, Math.fround(8 / 3), 4]);
    assert.deepEqual(col(1), [1, 0, 0, Math.fround(1 / 3)]);
    assert.deepEqual(col(2), [0, 1, 1, Math.fround(2 / 3)]);
    assert.deepEqual(col(3), [2, 4, 6, 4]);
    rejects(
      table('1,F,,no', '2,F,,no'),
      'bmi',
      'column "bmi": every value is missing, no mean to impute',
      schemaOf({ missing: 'impute-mean' }),
    );
    rejects(
      table('1,F,2,no', '1,F,2,'),
      'outcome',
      `row 2, column "outcome": missing label (rows without a label can only be dropped, missing: 'drop-row')`,
      schemaOf({ missing: 'impute-mean' }),
    );
  });
});

describe('the vendored breast-cancer data set', () => {
  const dir = new URL('../../datasets/breast-cancer/', import.meta.url);
  const schema = parseDataSchema(JSON.parse(readFileSync(new URL('schema.json', dir), 'utf8')));
  const data = loadTable(readFileSync(new URL('breast-cancer.csv', dir), 'utf8'), schema);

  it('loads 569 rows x 30 features, 212 malignant and 357 benign', () => {
    assert.equal(data.count, 569);
    assert.equal(data.dim, 30);
    assert.equal(data.featureNames[0], 'mean_radius');
    assert.equal(data.featureNames[29], 'worst_fractal_dimension');
    const malignant = data.y.filter((c) => c === 0).length;
    assert.equal(malignant, 212);
    assert.equal(data.count - malignant, 357);
  });

  it('keeps the source values and row order', () => {
    assert.equal(data.x[0], Math.fround(17.99));
    assert.equal(data.x[3], 1001);
    assert.equal(data.x[568 * 30 + 29], Math.fround(0.07039));
    assert.equal(data.y[0], 0);
    assert.equal(data.y[568], 1);
  });
});

describe('loadTable: the sensitive attribute and slices', () => {
  const evaluation = (overrides: Record<string, unknown> = {}) =>
    schemaOf({
      missing: 'drop-row',
      missingTokens: ['', 'NA'],
      sensitive: { name: 'race', values: ['a', 'b', 'c'] },
      slices: [
        { name: 'age>=50', column: 'age', min: 50 },
        { name: 'site a', column: 'site_type', in: ['a'] },
        { name: 'bmi 20-30', column: 'bmi', min: 20, max: 30 },
        { name: 'female', column: 'sex', in: ['F'] },
      ],
      ...overrides,
    });
  const text = [
    'age,sex,bmi,outcome,race,site_type',
    '40,M,22.5,yes,b,a', // kept
    '55,F,,no,a,a', // dropped: bmi missing
    '50,F,30,no,NA,b', // kept, no group
    '70,NA,19.9,yes,c,NA', // dropped: sex missing
    '12,M,20,no,c,NA', // kept
    '49,F,29.99,yes,a,a', // kept
  ].join('\n');

  it('returns groups and slice memberships aligned with the kept rows, none as model input', () => {
    const data = loadTable(text, evaluation());
    assert.equal(data.count, 4);
    assert.deepEqual(data.featureNames, ['age', 'sex=F', 'sex=M', 'bmi']);
    assert.deepEqual([...data.x.subarray(0, 4)], [40, 0, 1, 22.5]);
    assert.deepEqual([...data.y], [1, 0, 0, 1]);
    assert.deepEqual([...data.groups!], [1, -1, 2, 0]);
    assert.equal(data.slices!.length, 4);
    assert.deepEqual(
      data.slices!.map((m) => [...m]),
      [
        [0, 1, 0, 0], // age >= 50 (inclusive)
        [1, 0, 0, 1], // site_type a; a missing cell is in no slice
        [1, 0, 1, 1], // 20 <= bmi < 30 (30 excluded)
        [0, 1, 0, 1], // sex F
      ],
    );
    assert.ok(data.groups instanceof Int32Array && data.slices![0] instanceof Uint8Array);
  });

  it('keeps every row unchanged when none is dropped, and omits the fields when not declared', () => {
    const all = ['age,sex,bmi,outcome,race,site_type', '40,M,22.5,yes,b,a', '50,F,30,no,,b'].join('\n');
    const data = loadTable(all, evaluation());
    assert.deepEqual([...data.groups!], [1, -1]);
    assert.deepEqual([...data.slices![0]!], [0, 1]);
    const plain = loadTable(all, schemaOf({ ignore: ['race', 'site_type'] }));
    assert.ok(!('groups' in plain) && !('slices' in plain));
    assert.deepEqual([...plain.x], [...data.x]);
  });

  it('accepts the sensitive column as a feature or an ignored column', () => {
    const asFeature = loadTable(
      table('40,M,22.5,yes', '57,F,31,no'),
      schemaOf({ sensitive: { name: 'sex', values: ['M', 'F'] } }),
    );
    assert.deepEqual([...asFeature.groups!], [0, 1]);
    assert.equal(asFeature.dim, 4);
    const ignored = loadTable(
      'age,sex,bmi,outcome,race\n40,M,22.5,yes,b\n',
      schemaOf({ ignore: ['race'], sensitive: { name: 'race', values: ['a', 'b'] } }),
    );
    assert.deepEqual([...ignored.groups!], [1]);
    assert.equal(ignored.dim, 4);
  });

  it('refuses a value that is not declared, a non-number bounded cell and an absent column', () => {
    const header = 'age,sex,bmi,outcome,race,site_type';
    rejects(
      `${header}\n40,M,22.5,yes,b,a\n41,M,22.5,yes,B,a`,
      'race',
      'row 2, column "race": "B" is not a declared value of the sensitive attribute',
      evaluation(),
    );
    // Refused even on a row that is dropped for a missing feature.
    rejects(
      `${header}\n40,M,,yes,d,a`,
      'race',
      'row 1, column "race": "d" is not a declared value of the sensitive attribute',
      evaluation(),
    );
    rejects(
      `${header}\n40,M,22.5,yes,b,a`,
      'site_type',
      'row 1, column "site_type": "a" is not a number (a slice bounds this column)',
      evaluation({ slices: [{ name: 's', column: 'site_type', min: 1 }] }),
    );
    rejects(
      'age,sex,bmi,outcome,site_type\n40,M,22.5,yes,a',
      'race',
      'column "race": is declared but not in the header (missing: "race")',
      evaluation(),
    );
  });
});
