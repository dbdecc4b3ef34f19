-- 0005_demo_provider_embedded_only: the `demo` provider belongs to `sri up` alone.
--
-- 0001 seeded it into every catalogue with the hosts 127.0.0.1 and localhost (any port): in a real deployment any
-- organisation could connect it and run a flow against the loopback ports of the worker hosts. It is now added by
-- the embedded stack only (src/embedded/stack.ts, for its demo portal's port), so it is removed here wherever
-- nothing refers to it. Where flows, connections or jobs use it, the row stays (deleting it would break them, and
-- the operator chose to run it); DELETE FROM providers WHERE id = 'demo' after removing those removes it there too.
DELETE FROM providers p
 WHERE p.id = 'demo'
   AND NOT EXISTS (SELECT 1 FROM flows f WHERE f.provider_id = p.id)
   AND NOT EXISTS (SELECT 1 FROM provider_connections c WHERE c.provider_id = p.id)
   AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.provider_id = p.id);
