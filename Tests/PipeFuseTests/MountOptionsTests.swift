import PipeCore
import PipeFuse
import Testing

@Suite struct MountOptionsTests {
    @Test func openTimeoutsAreDecimalSeconds() {
        #expect(throws: MountOptions.Invalid.self) { try MountOptions.parse(["open_timeout=-1"]) }
        #expect((try? MountOptions.parse(["open_timeout=1.5"]))?.pipe.openTimeout == 1.5)
    }

    /// Hostile options: each parses or is refused with its name, never a trap.
    @Test func optionsTakeHostileInput() {
        var state: UInt64 = 43
        func next() -> UInt64 {   // a seeded LCG: the same inputs every run
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 17
        }
        let alphabet = Array("0123456789KMGkmgiB.=,/\\-_ \u{0}\ncapacitymodeframingmax_pipesallow_otherpipe_modeopen_timeout".utf8) + [0xFF, 0xC3]
        for _ in 0..<20_000 {
            let length = Int(next() % 120)
            let bytes = (0..<length).map { _ in
                next() % 3 == 0 ? UInt8(truncatingIfNeeded: next()) : alphabet[Int(next() % UInt64(alphabet.count))]
            }
            if let options = try? MountOptions.parse([String(decoding: bytes, as: UTF8.self)]) {
                #expect(PipeConfig.validCapacities.contains(options.pipe.capacity) && options.pipeMode <= 0o777)
                #expect(options.limits.maxPipes > 0 && options.limits.maxMemory >= 4096)
            }
        }
    }

    @Test func sizes() {
        #expect(PipeConfig.parseSize("65536") == 65_536)
        #expect(PipeConfig.parseSize("64K") == 65_536)
        #expect(PipeConfig.parseSize("64k") == 65_536)
        #expect(PipeConfig.parseSize("1M") == 1 << 20)
        #expect(PipeConfig.parseSize("1MiB") == 1 << 20)
        #expect(PipeConfig.parseSize("2G") == 2 << 30)
        for bad in ["", "K", "-1", "1.5M", "12Q", "0x10", "99999999999999999999G"] {
            #expect(PipeConfig.parseSize(bad) == nil, "\(bad)")
        }
    }

    @Test func capacityAndPassThrough() throws {
        let options = try MountOptions.parse(["capacity=1M,allow_other", "fsname=pipes"])
        #expect(options.pipe.capacity == 1 << 20)
        #expect(options.fuseOptions == ["default_permissions", "subtype=npfs", "allow_other", "fsname=pipes"])
        #expect(try MountOptions.parse([]).pipe.capacity == 65_536)
    }

    @Test func limitsDefaultFromTheMachineAndCanBeGiven() throws {
        let defaults = try MountOptions.parse([], physicalMemory: 24 << 30).limits
        #expect(defaults == MountLimits(maxPipes: 16_384, userMaxPipes: 4096, maxMemory: 1 << 30, userMaxMemory: 256 << 20, maxCapacity: 1 << 20))
        #expect(try MountOptions.parse([], physicalMemory: 2 << 30).limits.maxMemory == 256 << 20, "an eighth of a small machine")
        let given = try MountOptions.parse(["max_pipes=10,max_memory=64M,user_max_memory=8M,max_capacity=4M"]).limits
        #expect(given == MountLimits(maxPipes: 10, userMaxPipes: 2, maxMemory: 64 << 20, userMaxMemory: 8 << 20, maxCapacity: 4 << 20))
        #expect(given.maxWaitingBytes == 16 << 20 && given.userMaxWaitingBytes == 2 << 20)
        #expect(try MountOptions.parse(["max_pipes=2"]).limits.userMaxPipes == 1, "a user's share is at least one pipe")
        #expect(try MountOptions.parse(["user_max_pipes=7"]).limits.userMaxPipes == 7)
        // Issue 12, item 18: a share above its whole is refused, not taken silently.
        for (bad, message) in [("max_memory=64M,user_max_memory=2G", "user_max_memory 2147483648 is above max_memory 67108864"),
                               ("max_pipes=10,user_max_pipes=20", "user_max_pipes 20 is above max_pipes 10")] {
            #expect(throws: MountOptions.Invalid.self) { try MountOptions.parse([bad]) }
            do { _ = try MountOptions.parse([bad]) } catch { #expect(error.description == message) }
        }
        // Issue 12, item 3: protected_pipes is on by default where other users reach the mount.
        #expect(try MountOptions.parse(["allow_other"]).protectedPipes == .group)
        #expect(try MountOptions.parse([]).protectedPipes == .off)
        #expect(try MountOptions.parse(["allow_other,protected_pipes=0"]).protectedPipes == .off)
        #expect(try MountOptions.parse(["protected_pipes=2"]).protectedPipes == .strict)
        #expect(throws: MountOptions.Invalid.self) { try MountOptions.parse(["protected_pipes=3"]) }
        #expect(try MountOptions.parse(["max_memory=64M"]).limits.userMaxMemory == 16 << 20)
        #expect(try MountOptions.parse(["capacity=4M"]).limits.maxCapacity == 4 << 20, "max_capacity makes room for capacity")
        for (bad, fragment) in [("max_pipes=0", "max_pipes"), ("max_pipes=x", "max_pipes"), ("max_memory=1", "max_memory"),
                                ("user_max_memory=lots", "user_max_memory"), ("max_capacity=2G", "max_capacity"),
                                ("capacity=2M,max_capacity=1M", "above max_capacity"),
                                ("capacity=1M,max_memory=512K", "above max_memory")] {
            #expect(throws: MountOptions.Invalid.self, "\(bad)") { try MountOptions.parse([bad]) }
            do { _ = try MountOptions.parse([bad]) } catch { #expect(error.description.contains(fragment), "\(bad): \(error)") }
        }
    }

    @Test func threadsAreACountFromOneTo64() throws {
        #expect(try MountOptions.parse([]).threads == nil, "the daemon picks one per CPU")
        #expect(try MountOptions.parse(["threads=1"]).threads == 1)
        #expect(try MountOptions.parse(["threads=64"]).threads == 64)
        for bad in ["threads", "threads=0", "threads=65", "threads=-2", "threads=two", "threads=99999999999999999999"] {
            #expect(throws: MountOptions.Invalid.self, "\(bad)") { try MountOptions.parse([bad]) }
        }
    }

    @Test func ioUringDepthAndSpinAreBounded() throws {
        let defaults = try MountOptions.parse([])
        #expect(defaults.ioUringDepth == 8 && defaults.ioUringSpin == 20)
        #expect(try MountOptions.parse(["io_uring_spin=0"]).ioUringSpin == 0)
        #expect(try MountOptions.parse(["io_uring_spin=1000"]).ioUringSpin == 1000)
        #expect(try MountOptions.parse(["io_uring_depth=1024"]).ioUringDepth == 1024)
        for bad in ["io_uring_spin", "io_uring_spin=1001", "io_uring_spin=-1", "io_uring_spin=99999999999999999999",
                    "io_uring_depth=0", "io_uring_depth=1025", "io_uring_depth=x"] {
            #expect(throws: MountOptions.Invalid.self, "\(bad)") { try MountOptions.parse([bad]) }
        }
    }

    @Test func pipeModeIsOctal() throws {
        #expect(try MountOptions.parse([]).pipeMode == 0o666)
        #expect(try MountOptions.parse(["pipe_mode=0600"]).pipeMode == 0o600)
        #expect(try MountOptions.parse(["pipe_mode=660"]).pipeMode == 0o660)
    }

    @Test func badOptionsAreRejectedWithTheirName() {
        for (arguments, fragment) in [(["bogus"], "bogus"), (["capacity=12Q"], "12Q"), (["capacity=1K"], "out of range"),
                                      (["capacity"], "capacity"), (["fsname="], "fsname"), (["allow_other=1"], "allow_other"),
                                      (["pipe_mode=0800"], "pipe_mode"), (["pipe_mode=1777"], "pipe_mode"),
                                      (["pipe_mode="], "pipe_mode"), (["pipe_mode=-1"], "pipe_mode"), (["pipe_mode"], "pipe_mode")] {
            do {
                _ = try MountOptions.parse(arguments)
                Issue.record("\(arguments) accepted")
            } catch {
                #expect(error.description.contains(fragment), "\(error.description)")
            }
        }
    }
}

/// Issue 14: the cluster's options, and commas inside a value written `\,`.
@Suite struct ClusterOptionsTests {
    @Test func aCommaInsideAValueIsWrittenBackslashComma() throws {
        let options = try MountOptions.parse(["cluster=postgresql://db1\\,db2/npfs?target_session_attrs=read-write,cluster_space=s1,host=h1"])
        #expect(options.cluster?.connection == "postgresql://db1,db2/npfs?target_session_attrs=read-write")
        #expect(options.cluster?.space == "s1")
        #expect(options.cluster?.host == "h1")
        #expect(MountOptions.splitOptions("a=b\\\\,c") == ["a=b\\", "c"])
        #expect(MountOptions.splitOptions("a,,b") == ["a", "b"])
        #expect(try MountOptions.parse(["capacity=4K"]).cluster == nil)
        let defaults = try #require(try MountOptions.parse(["cluster=service=npfs"]).cluster)
        #expect(defaults.space == "default" && defaults.schema == "npfs" && defaults.timeout == 5 && defaults.host == nil)
    }

    @Test func badClusterOptionsAreRefusedByName() {
        for (arguments, fragment) in [(["cluster_space=x"], "cluster_space needs cluster="), (["host=h"], "host needs cluster="),
                                      (["cluster="], "cluster needs a value"), (["cluster=u,cluster_timeout=0"], "bad cluster_timeout"),
                                      (["cluster=u,cluster_timeout=nan"], "bad cluster_timeout"),
                                      (["cluster=u,cluster_space=a b"], "bad cluster_space"), (["cluster=u,host=\(String(repeating: "h", count: 64))"], "bad host")] {
            do {
                _ = try MountOptions.parse(arguments)
                Issue.record("\(arguments) accepted")
            } catch {
                #expect(error.description.contains(fragment), "\(error.description)")
            }
        }
    }
}

/// Issue 12, item 19: the catalogue that the help, the man page and the completions show
/// lists what the parser takes, each with values it accepts.
@Suite struct MountOptionsCatalogueTests {
    @Test func everyDocumentedOptionParses() {
        for option in MountOptions.catalogue {
            let samples = option.value == nil ? [option.name]
                : option.choices.isEmpty ? ["\(option.name)=npfs"]   // a value that cannot be listed: a name
                : option.choices.map { "\(option.name)=\($0)" }
            // The cluster's options come with the cluster they belong to.
            let alongside = option.name.hasPrefix("cluster_") || option.name == "host" ? ["cluster=postgresql://h/db"] : []
            for sample in samples {
                #expect(throws: Never.self, "\(sample)") { try MountOptions.parse(alongside + [sample], physicalMemory: 16 << 30) }
            }
        }
    }

    @Test func everyOptionIsDocumented() {
        let names = Set(MountOptions.catalogue.map(\.name))
        #expect(MountOptions.passedThrough.isSubset(of: names))
        #expect(MountOptions.passedThroughWithValue.isSubset(of: names))
        #expect(names.count == MountOptions.catalogue.count, "each option once")
        #expect(MountOptions.catalogue.allSatisfy { !$0.summary.contains("`") }, "plain text: no backticks")
    }
}
