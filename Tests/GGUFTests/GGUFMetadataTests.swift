import Foundation
import GGUF
import Testing
import TestSupport

/// Metadata of every GGUF value type, as written by gguf-py's GGUFWriter (`scripts/ref/gguf_fixtures.py`,
/// `metadata.gguf`: the values asserted here are the ones that script writes).
@Suite struct GGUFMetadataTests {
    static let url = Fixtures.url("gguf/metadata.gguf")

    @Test func everyScalarType() throws {
        let f = try GGUFFile(contentsOf: Self.url)
        #expect(f.value("t.u8") == .uint8(200))
        #expect(f.value("t.i8") == .int8(-100))
        #expect(f.value("t.u16") == .uint16(60000))
        #expect(f.value("t.i16") == .int16(-30000))
        #expect(f.value("t.u32") == .uint32(4_000_000_000))
        #expect(f.value("t.i32") == .int32(-2_000_000_000))
        #expect(f.value("t.f32") == .float32(0.1))
        #expect(f.value("t.u64") == .uint64(18_000_000_000_000_000_000))
        #expect(f.value("t.i64") == .int64(-9_000_000_000_000_000_000))
        #expect(f.value("t.f64") == .float64(-2.5e-300))
        #expect(f.value("t.true") == .bool(true) && f.value("t.false") == .bool(false))
        #expect(f.value("t.str") == .string("héllo ✓ \"quoted\"\nnewline"))
        #expect(f.value("general.architecture") == .string("fixture"))
        #expect(f.metadataKeys.first == "general.architecture" && f.metadataKeys.count == 22 && f.metadata.count == 22)
    }

    @Test func arraysIncludingNested() throws {
        let f = try GGUFFile(contentsOf: Self.url)
        #expect(try f.stringArray("t.arr.str") == ["a", "", "Ġthe", "<|im_end|>"])
        #expect(try f.intArray("t.arr.i32") == [1, -2, 3, 2_147_483_647])
        #expect(f.value("t.arr.u8") == .array(.uint8, [.uint8(0), .uint8(255), .uint8(7)]))
        #expect(try f.floatArray("t.arr.f32") == [0.5, -1.25, 3.0e-8])
        #expect(f.value("t.arr.bool") == .array(.bool, [.bool(true), .bool(false), .bool(true)]))
        #expect(f.value("t.arr.nested") == .array(.array, [
            .array(.int32, [.int32(1), .int32(2)]), .array(.int32, [.int32(3)]),
            .array(.int32, [.int32(4), .int32(5), .int32(6)]),
        ]))
        #expect(f.value("t.arr.nested.str") == .array(.array, [
            .array(.string, [.string("x"), .string("y")]), .array(.string, [.string("z")]),
        ]))
    }

    @Test func typedAccessors() throws {
        let f = try GGUFFile(contentsOf: Self.url)
        #expect(try f.int("t.u32") == 4_000_000_000)
        #expect(try f.int("t.i8") == -100)
        #expect(throws: GGUFError.self) { _ = try f.int("t.u64") }  // does not fit Int: an error, not a wrap
        #expect(try f.float("t.f32") == 0.1)
        #expect(try f.double("t.f64") == -2.5e-300)
        #expect(try f.bool("t.true") == true)
        #expect(try f.string("t.str")?.hasPrefix("héllo") == true)
        #expect(try f.string("absent") == nil)
        #expect(try f.requireInt("general.alignment") == 64)
        // Wrong type: an error naming the key and what was found.
        do {
            _ = try f.string("t.u8")
            Issue.record("uint8 read as a string")
        } catch let e as GGUFError {
            #expect(e.kind == .wrongValueType && e.key == "t.u8" && e.description.contains("uint8"), "\(e)")
        }
        #expect(throws: GGUFError.self) { _ = try f.stringArray("t.arr.i32") }
        #expect(throws: GGUFError.self) { _ = try f.intArray("t.arr.str") }
        do {
            _ = try f.requireString("general.name")
            Issue.record("absent key was found")
        } catch let e as GGUFError {
            #expect(e.kind == .missingKey && e.key == "general.name")
        }
    }

    @Test func alignmentAndTensors() throws {
        let f = try GGUFFile(contentsOf: Self.url)
        #expect(f.alignment == 64 && f.dataOffset % 64 == 0)
        #expect(f.tensors.map(\.name) == ["a", "b"])
        #expect(f.tensors.map(\.offset) == [0, 64])
        #expect(f.tensors[1].shape == [2, 3] && f.tensors[1].dimensions == [3, 2] && f.tensors[1].type == .f32)
        #expect(try f.floats("a") == [0, 1, 2])
        #expect(try f.floats("b") == [0, -0.5, -1, -1.5, -2, -2.5])
    }

    @Test func inMemoryImageParsesLikeTheMappedFile() throws {
        let bytes = [UInt8](try Data(contentsOf: Self.url))
        let m = try GGUFFile(bytes: bytes)
        let f = try GGUFFile(contentsOf: Self.url)
        #expect(m.metadata == f.metadata && m.tensors == f.tensors && m.dataOffset == f.dataOffset)
        #expect(try m.floats("b") == f.floats("b"))
    }
}
