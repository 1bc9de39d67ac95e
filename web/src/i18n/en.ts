// English, the reference catalogue: every key here must exist in every other catalogue (a test
// checks it), with the same {placeholders}.
export const en = {
  'app.name': 'Sirr',
  'app.loading': 'Starting Sirr…',
  'lang.label': 'Language',

  'nocore.title': 'This server was built without the web client core',
  'nocore.body':
    'The web client needs its encryption core, and this build of the server does not include it, so this page cannot link to your account or show messages. Use the sirr command-line client for now, or ask whoever runs this server for a build with the web client.',
  'failed.title': 'The web client could not start',
  'failed.body': 'Reload the page to try again. If it keeps failing, the detail below helps a bug report.',
  'failed.reload': 'Reload',

  'link.title': 'Link this browser to your account',
  'link.intro': 'This browser becomes one of your account’s devices. Approve it from a device that is already signed in.',
  'link.deviceName': 'Name for this browser',
  'link.defaultName': 'Web browser',
  'link.start': 'Show link code',
  'link.qrLabel': 'QR code of the link code',
  'link.code': 'Link code',
  'link.copy': 'Copy code',
  'link.copied': 'Copied',
  'link.instructions': 'On your phone, run this command:',
  'link.waiting': 'Waiting for approval…',
  'link.expires': 'The code expires at {time}.',
  'link.cancel': 'Cancel',

  'nav.chats': 'Chats',
  'nav.settings': 'Settings',

  'conv.title': 'Chats',
  'conv.empty': 'No chats yet.',
  'conv.noMessages': 'No messages yet',
  'conv.unread': 'Unread: {count}',
  'conv.group': 'Group',
  'conv.new': 'New chat',
  'conv.phone': 'Phone number, with country code',
  'conv.open': 'Open chat',

  'chat.none': 'Choose a chat.',
  'chat.messages': 'Messages',
  'chat.composer': 'Message',
  'chat.hint': 'Enter sends. Shift+Enter starts a new line.',
  'chat.send': 'Send',
  'chat.you': 'You',
  'chat.keyChanged': 'The safety number with {phone} has changed. Compare it again before you trust new messages.',
  'chat.sendFailed': 'Could not send: {reason}',

  'state.sending': 'Sending',
  'state.sent': 'Sent',
  'state.delivered': 'Delivered',
  'state.read': 'Read',
  'state.failed': 'Not sent',

  'banner.offline': 'Not connected to the server. Messages will be sent when the connection is back.',
  'banner.connecting': 'Connecting to the server…',

  'settings.title': 'Settings',
  'settings.devices': 'Linked devices',
  'settings.thisDevice': 'This device',
  'settings.deviceName': 'Name of {name}',
  'settings.rename': 'Rename',
  'settings.remove': 'Remove',
  'settings.approveTitle': 'Approve a new device',
  'settings.approveCode': 'Link code shown on the new device',
  'settings.approve': 'Approve',
  'settings.approved': '{name} is now linked.',
  'settings.consents': 'Optional uses of your data',
  'settings.consentsHelp': 'All are off until you turn them on. A change applies at once on all your devices.',
  'settings.notOffered': 'Not offered on this server',

  'consent.read-receipts': 'Send read receipts',
  'consent.last-seen': 'Show when I was last seen',
  'consent.profile-photo': 'Show my profile photo',
  'consent.share-number-with-businesses': 'Share my number with businesses I message',

  'error.not_linked': 'this browser is not linked to an account yet',
  'error.offline': 'the server cannot be reached',
  'error.rate_limited': 'too many requests; try again in a moment',
  'error.not_found': 'not found',
  'error.invalid_phone': 'that is not a phone number with its country code (for example +60123456789)',
  'error.invalid_code': 'the link code is wrong or has expired',
  'error.blocked': 'blocked',
  'error.not_member': 'you are not a member of this group',
  'error.too_large': 'the message is too large',
  'error.untrusted_device': 'one of the recipient’s devices was not approved by their account',
  'error.storage': 'this browser’s storage failed or is full',
  'error.locked': 'Sirr is already open in another tab',
  'error.internal': 'an internal error',
} as const;

export type MessageKey = keyof typeof en;
export type Catalogue = Record<MessageKey, string>;
