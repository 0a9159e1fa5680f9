/**
 * Everything a service file needs, from one place:
 *
 * ```ts
 * import { defineService, QdpError, setting, settingSchemas, t } from "../api.ts";
 * ```
 *
 * Services import from here (not from the server's internals), so the server can change
 * behind this module without touching them.
 */
export { Type as t, type Static, type TSchema } from "@sinclair/typebox";
export { QdpError, type ErrorCode } from "../core/errors.ts";
export { setting, settingSchemas, type SettingSpec, type SettingsOf } from "./settings.ts";
export {
  defineService,
  RawJson,
  type AnyService,
  type Logger,
  type ServiceContext,
  type ServiceDefinition,
  type UpstreamClient,
  type UpstreamRequest,
} from "./types.ts";
export type { RecordStore } from "../stores/record-store.ts";
