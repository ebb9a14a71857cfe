package twilio

// IsMessageSID reports whether s has the shape of a Twilio message sid: SM or
// MM followed by 32 hexadecimal digits.
func IsMessageSID(s string) bool {
	return len(s) == 34 && (s[:2] == "SM" || s[:2] == "MM") && isHex(s[2:])
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHexByte(s[i]) {
			return false
		}
	}
	return true
}

func isHexByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
