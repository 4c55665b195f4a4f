/**
 * The small part of the Reflect Metadata API (https://rbuckton.github.io/reflect-metadata/) that
 * tsyringe, a dependency of @peculiar/x509, requires to exist when it loads (it throws otherwise, and
 * no polyfill package is installed). Installed on the global `Reflect` only when no implementation
 * (reflect-metadata, core-js, @abraham/reflection) is already there; a real one loaded earlier wins.
 * pki.ts imports this module before '@peculiar/x509' (ES modules evaluate in import order).
 */

type PropertyKeyOrNone = string | symbol | undefined;
type Metadata = Map<unknown, unknown>;

const store = new WeakMap<object, Map<PropertyKeyOrNone, Metadata>>();

function ownMap(target: object, property: PropertyKeyOrNone, create: boolean): Metadata | undefined {
  let byProperty = store.get(target);
  if (byProperty === undefined) {
    if (!create) return undefined;
    byProperty = new Map();
    store.set(target, byProperty);
  }
  let map = byProperty.get(property);
  if (map === undefined && create) {
    map = new Map();
    byProperty.set(property, map);
  }
  return map;
}

function defineMetadata(key: unknown, value: unknown, target: object, property?: string | symbol): void {
  ownMap(target, property, true)!.set(key, value);
}

function hasOwnMetadata(key: unknown, target: object, property?: string | symbol): boolean {
  return ownMap(target, property, false)?.has(key) ?? false;
}

function getOwnMetadata(key: unknown, target: object, property?: string | symbol): unknown {
  return ownMap(target, property, false)?.get(key);
}

function hasMetadata(key: unknown, target: object, property?: string | symbol): boolean {
  for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t)) {
    if (hasOwnMetadata(key, t, property)) return true;
  }
  return false;
}

function getMetadata(key: unknown, target: object, property?: string | symbol): unknown {
  for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t)) {
    if (hasOwnMetadata(key, t, property)) return getOwnMetadata(key, t, property);
  }
  return undefined;
}

function metadata(key: unknown, value: unknown) {
  return (target: object, property?: string | symbol): void => defineMetadata(key, value, target, property);
}

const reflect = Reflect as unknown as Record<string, unknown>;
if (typeof reflect.getMetadata !== 'function') {
  Object.assign(reflect, {
    defineMetadata,
    hasOwnMetadata,
    getOwnMetadata,
    hasMetadata,
    getMetadata,
    metadata,
  });
}
