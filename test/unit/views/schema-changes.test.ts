/**
 * What a shape change of a source table means per view, and how that depends on what a rebuild
 * would read (views/schema-changes.ts): the tables as they are now, or the same log again.
 */
import { describe, expect, it } from 'vitest';
import type { SchemaChange } from '../../../ingest/change.ts';
import { createRegistry } from '../../../views/registry.ts';
import { schemaChangeEffects } from '../../../views/schema-changes.ts';
import shop from '../../../examples/shop/views.config.ts';

const registry = createRegistry(shop);
const scale: SchemaChange = {
  kind: 'typeChanged',
  table: 'public.products',
  column: 'price',
  from: 'org.apache.kafka.connect.data.Decimal(scale=2)',
  to: 'org.apache.kafka.connect.data.Decimal(scale=3)',
  fitsDeclaration: true,
};

describe('schemaChangeEffects', () => {
  it('a type change that still fits the declaration: rebuilt from a snapshot of the tables', () => {
    const effects = schemaChangeEffects(registry, [scale], { rebuildsFrom: 'snapshot' });
    expect(effects.stop).toEqual([]);
    expect(effects.rebuild).toContain(
      'changed type from org.apache.kafka.connect.data.Decimal(scale=2) to org.apache.kafka.connect.data.Decimal(scale=3)',
    );
    expect(schemaChangeEffects(registry, [scale]).rebuild).toBe(effects.rebuild);
  });

  it('… but when a rebuild re-reads a log (Kafka), which holds the old values, the views reading the column stop', () => {
    const effects = schemaChangeEffects(registry, [scale], { rebuildsFrom: 'log' });
    expect(effects.rebuild).toBeNull();
    expect(effects.stop.map((s) => s.view)).toEqual(['productsByCategory']);
    expect(effects.stop[0]!.reason).toMatch(
      /^column public\.products\.price changed type from .*Decimal\(scale=2\) to .*Decimal\(scale=3\): .*records in Kafka still hold the old ones.*Fix: have Debezium send the table again/,
    );
  });

  it('a type change that no longer fits, and a dropped column, stop their readers whatever a rebuild reads; the fix says what a log needs', () => {
    const changes: SchemaChange[] = [
      {
        kind: 'typeChanged',
        table: 'public.order_items',
        column: 'quantity',
        from: 'int32',
        to: 'int64',
        fitsDeclaration: false,
      },
      { kind: 'columnsDropped', table: 'public.orders', columns: ['amount'] },
    ];
    const reasons = (rebuildsFrom: 'snapshot' | 'log') => {
      const effects = schemaChangeEffects(registry, changes, { rebuildsFrom });
      expect(effects.rebuild).toBeNull();
      return Object.fromEntries(effects.stop.map((s) => [s.view, s.reason]));
    };
    const fromSnapshot = reasons('snapshot');
    const fromLog = reasons('log');
    const stopped = [
      'customerOrderCounts',
      'largePaidOrders',
      'ordersByStatus',
      'ordersWithCustomer',
      'productRevenue',
      'productSales',
      'revenueByCustomer',
      'salesByCategory',
    ];
    expect(Object.keys(fromSnapshot).sort()).toEqual(stopped);
    expect(Object.keys(fromLog).sort()).toEqual(stopped);
    expect(fromSnapshot['productSales']).toMatch(
      /Fix: declare the column with its new type in the config, then restart/,
    );
    // The records from before the change keep the old type: a rebuild from them would stop again.
    expect(fromLog['productSales']).toMatch(
      /Fix: declare the column with its new type in the config and, .* have Debezium send the table again into new topics/,
    );
    expect(fromSnapshot['largePaidOrders']).toContain('(or restore the column)');
    expect(fromLog['largePaidOrders']).not.toContain('restore');
  });
});
