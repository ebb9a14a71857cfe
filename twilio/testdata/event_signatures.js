const twilio = require('twilio');
const crypto = require('crypto');
const token = '12345678901234567890123456789012';
const cases = [
  {url: 'https://hooks.example.com/twilio/events', body: '[{"specversion":"1.0","type":"com.twilio.messaging.inbound-message.received","id":"EZ1","data":{"messageSid":"SM1","body":"héllo ☃ 🎉"}}]'},
  {url: 'https://hooks.example.com:8443/twilio/events', body: '[]'},
  {url: 'http://127.0.0.1:8080/base/twilio/events?sink=main', body: '[{"id":"EZ2","data":{"body":"مرحبا"}}]'},
];
const out = cases.map(c => {
  const hash = crypto.createHash('sha256').update(c.body).digest('hex');
  const sep = c.url.includes('?') ? '&' : '?';
  const url = c.url + sep + 'bodySHA256=' + hash;
  const sig = twilio.getExpectedTwilioSignature(token, url, {});
  if (!twilio.validateRequestWithBody(token, sig, url, c.body)) throw new Error('does not validate: ' + url);
  if (twilio.validateRequestWithBody(token, sig, url, c.body + ' ')) throw new Error('a changed body validates');
  return {url, body: c.body, signature: sig};
});
console.log(JSON.stringify({library: 'twilio-node ' + require('twilio/package.json').version, token, cases: out}, null, 2));
