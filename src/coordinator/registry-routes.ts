/**
 * The model registry's endpoints, read by the members who read the audit log (the registry is a view
 * of it: coordinator/model-registry.ts): every model version with its lineage and the aliases pointing
 * at it, one version (by digest, unique prefix or alias) with its model-card section (evaluations with
 * their plans, privacy spent, intended use), and the alias table with each alias's history. Aliases
 * move only by move-alias proposals (POST /v1/proposals, then signatures; the approving signature
 * applies the move and logs `alias-moved`). Each route checks the caller's role first (access.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { parseMessage } from '../protocol/index.ts';
import { aliasesOf, buildRegistryCardSection, resolveVersion } from '../registry/index.ts';
import type { RouteName } from './access.ts';
import type { ModelRegistry } from './model-registry.ts';

export interface RegistryRouteDeps {
  readonly guard: (request: FastifyRequest, route: RouteName) => string;
  readonly registry: ModelRegistry;
}

const refParam = z.strictObject({ ref: z.string().min(1).max(64) });

export function registerRegistryRoutes(app: FastifyInstance, deps: RegistryRouteDeps): void {
  const { guard, registry } = deps;
  app.get('/v1/registry/models', async (request) => {
    guard(request, 'GET /v1/registry/models');
    const view = registry.view();
    return {
      versions: view.versions.map((v) => ({ ...v, aliases: aliasesOf(view, v.id) })),
      aliases: view.aliases.map((a) => ({
        alias: a.alias,
        version: a.version,
        entry: a.since.entry,
        proposal: a.since.proposal,
      })),
    };
  });
  app.get('/v1/registry/models/:ref', async (request) => {
    guard(request, 'GET /v1/registry/models/:ref');
    const { ref } = parseMessage(refParam, request.params, 'path');
    const { entries, view } = registry.snapshot();
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
  });
  app.get('/v1/registry/aliases', async (request) => {
    guard(request, 'GET /v1/registry/aliases');
    const view = registry.view();
    return { aliases: view.aliases.map((a) => ({ alias: a.alias, version: a.version, history: a.history })) };
  });
}
