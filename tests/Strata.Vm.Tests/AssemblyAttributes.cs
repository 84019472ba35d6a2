// The guest agent under test and the VM (qemu-system-x86_64, KVM-less TCG, unix sockets) are Linux's.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
