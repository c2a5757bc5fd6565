// Sent as the library version in each event's context; a test keeps it equal to package.json's version.
export const VERSION = '0.1.0';
