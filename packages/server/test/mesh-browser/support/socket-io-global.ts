// socket.io-client as a page global, for pages that run code from npm as is.
import { io } from 'socket.io-client';

(window as unknown as { io: typeof io }).io = io;
