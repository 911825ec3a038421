// ICE servers for clients: Galène's data/ice-servers.json, the --turn option,
// and TURN REST credentials derived from shared secrets.
export {
  DEFAULT_TURN_TTL_SECONDS,
  ICE_SERVERS_FILE,
  IceConfigError,
  configuredIceServers,
  loadIceServers,
  parseIceServers,
  rtcConfigurationFor,
  turnOptionServers,
  type ConfiguredIceServer,
  type TurnOption,
} from './ice-servers.ts';
export { turnRestCredentials, type TurnCredentials } from './turn-rest.ts';
