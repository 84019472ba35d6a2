// A guest agent for Linux guests: FIFREEZE, /proc/self/mounts and unix file modes are Linux's.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
