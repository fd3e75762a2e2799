import type { MigrationObject } from '@mikro-orm/core';
import { Migration20261125000000CreateWorker } from './Migration20261125000000CreateWorker.js';
import { Migration20261125010000Identity } from './Migration20261125010000Identity.js';
import { Migration20261125020000WorkerLifecycle } from './Migration20261125020000WorkerLifecycle.js';
import { Migration20261126000000PlatformSetting } from './Migration20261126000000PlatformSetting.js';
import { Migration20261126010000WorkerMetricsRollup } from './Migration20261126010000WorkerMetricsRollup.js';
import { Migration20261126020000Sessions } from './Migration20261126020000Sessions.js';
import { Migration20261126030000SessionAffinities } from './Migration20261126030000SessionAffinities.js';
import { Migration20261126040000SessionRetryBackoff } from './Migration20261126040000SessionRetryBackoff.js';
import { Migration20261127010000ApiKeysWithoutCreator } from './Migration20261127010000ApiKeysWithoutCreator.js';
import { Migration20261127020000Invitations } from './Migration20261127020000Invitations.js';
import { Migration20261127030000SigningKeyEncryption } from './Migration20261127030000SigningKeyEncryption.js';
import { Migration20261130000000Installation } from './Migration20261130000000Installation.js';
import { Migration20261130010000MessagingPipeline } from './Migration20261130010000MessagingPipeline.js';

/**
 * Migrations in the order they apply. Listed explicitly (not discovered from
 * the file system) so they run the same under tsx, vitest and a bundle.
 */
export const migrationsList: MigrationObject[] = [
  { name: 'Migration20261125000000CreateWorker', class: Migration20261125000000CreateWorker },
  { name: 'Migration20261125010000Identity', class: Migration20261125010000Identity },
  { name: 'Migration20261125020000WorkerLifecycle', class: Migration20261125020000WorkerLifecycle },
  { name: 'Migration20261126000000PlatformSetting', class: Migration20261126000000PlatformSetting },
  { name: 'Migration20261126010000WorkerMetricsRollup', class: Migration20261126010000WorkerMetricsRollup },
  { name: 'Migration20261126020000Sessions', class: Migration20261126020000Sessions },
  { name: 'Migration20261126030000SessionAffinities', class: Migration20261126030000SessionAffinities },
  { name: 'Migration20261126040000SessionRetryBackoff', class: Migration20261126040000SessionRetryBackoff },
  { name: 'Migration20261127010000ApiKeysWithoutCreator', class: Migration20261127010000ApiKeysWithoutCreator },
  { name: 'Migration20261127020000Invitations', class: Migration20261127020000Invitations },
  { name: 'Migration20261127030000SigningKeyEncryption', class: Migration20261127030000SigningKeyEncryption },
  { name: 'Migration20261130000000Installation', class: Migration20261130000000Installation },
  { name: 'Migration20261130010000MessagingPipeline', class: Migration20261130010000MessagingPipeline },
];
