// Groups: Galène group files, passwords, password login, and the groups directory.
export {
  DEFAULT_MAX_HISTORY_AGE,
  GROUP_FILE_FIELDS,
  GroupFileError,
  KNOWN_CODECS,
  PERMISSION_SETS,
  expandPermissions,
  groupFileSchema,
  jwkSchema,
  parseGroupDescription,
  passwordDefinitionSchema,
  permissionsFieldSchema,
  userDefinitionSchema,
} from './description.ts';
export type { GroupDescription, GroupFile, PasswordDefinition, PermissionSetName, UserDescription } from './description.ts';
export { hashPassword, verifyPassword } from './passwords.ts';
export { authenticateUnnamed, authenticateWithPassword } from './authenticate.ts';
export type { PasswordLogin } from './authenticate.ts';
export {
  DEFAULT_PUBLIC_GROUP,
  GroupNotFoundError,
  GroupStore,
  GroupStoreError,
  InvalidGroupNameError,
  PreconditionFailedError,
  checkPreconditions,
  etagMatches,
  etagOf,
  validateGroupName,
} from './store.ts';
export type { GroupStoreErrorCode, Preconditions, RawGroup, WriteResult } from './store.ts';
