import GPULedgerStore
import Testing

@Suite struct SQLSplitterTests {
    @Test func splitsOnSemicolonsOutsideQuotesAndComments() {
        let sql = """
            -- a comment; with a semicolon
            CREATE TABLE a (x text DEFAULT 'a;b');
            /* block; /* nested; */ still comment; */
            INSERT INTO a VALUES ('it''s; fine'), (E'back\\\\'';slash');
            CREATE TABLE "we;ird" (y int);
            """
        let parts = SQLSplitter.split(sql)
        #expect(parts.count == 3)
        #expect(parts[0].hasPrefix("-- a comment"))
        #expect(parts[0].hasSuffix("DEFAULT 'a;b')"))
        #expect(parts[1].contains("('it''s; fine')"))
        #expect(parts[2] == "CREATE TABLE \"we;ird\" (y int)")
    }

    @Test func keepsDollarQuotedBodiesWhole() {
        let sql = """
            CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql;
            DO $body$ BEGIN PERFORM 1; PERFORM $x$;$x$; END $body$;
            SELECT $1;
            """
        let parts = SQLSplitter.split(sql)
        #expect(parts.count == 3)
        #expect(parts[0].hasSuffix("LANGUAGE plpgsql"))
        #expect(parts[1].hasPrefix("DO $body$") && parts[1].hasSuffix("END $body$"))
        #expect(parts[2] == "SELECT $1")
    }

    @Test func dropsEmptyStatementsAndTrailingComments() {
        #expect(SQLSplitter.split(";;  ; -- nothing\n").isEmpty)
        #expect(SQLSplitter.split("SELECT 1;\n-- the end\n") == ["SELECT 1"])
        #expect(SQLSplitter.split("SELECT 1") == ["SELECT 1"])
    }
}
