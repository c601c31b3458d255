//! The tables the floor reads: printfarm's own definitions (src/db/schema.rs) for these
//! tables, column for column in the same order, so that Diesel writes the same SQL text for the
//! same query (a table's default select lists every column in this order).

diesel::table! {
    users (id) {
        id -> BigInt,
        organization_id -> BigInt,
        email -> Text,
        password_hash -> Nullable<Text>,
        firstname -> Text,
        lastname -> Text,
        company -> Text,
        access_role -> Integer,
        gdpr -> Integer,
        google_sub -> Nullable<Text>,
        balance -> Nullable<Double>,
        monthly_quota -> Nullable<Integer>,
        quota_used -> Integer,
        quota_period -> Nullable<Text>,
        disabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        user_id -> Nullable<BigInt>,
        token_hash -> Text,
        gdpr_pending -> Nullable<Text>,
        client_addr -> Nullable<Text>,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    workgroups (id) {
        id -> BigInt,
        organization_id -> BigInt,
        name -> Text,
        join_password -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    printers (id) {
        id -> BigInt,
        organization_id -> BigInt,
        owner_user_id -> Nullable<BigInt>,
        printer_type_id -> Nullable<BigInt>,
        name -> Text,
        snr -> Text,
        host_num -> Text,
        local_ip -> Text,
        vid -> Text,
        pid -> Text,
        mac -> Text,
        agent_version -> Nullable<Text>,
        auth_token_hash -> Nullable<Text>,
        state -> Text,
        percent -> Double,
        temps -> Nullable<Text>,
        target_temps -> Nullable<Text>,
        report -> Nullable<Text>,
        last_error -> Nullable<Text>,
        current_job_id -> Nullable<BigInt>,
        tray_clear -> Bool,
        filaments -> Nullable<Text>,
        camera_watched_until -> Nullable<Timestamp>,
        last_seen_at -> Nullable<Timestamp>,
        next_command_number -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        circuit_id -> Nullable<BigInt>,
        maintenance_note -> Nullable<Text>,
        maintenance_since -> Nullable<Timestamp>,
        maintained_at -> Nullable<Timestamp>,
        maintenance_hours_limit -> Nullable<Double>,
        maintenance_filament_limit_g -> Nullable<Double>,
    }
}

diesel::table! {
    printer_shares (id) {
        id -> BigInt,
        printer_id -> BigInt,
        email -> Text,
        user_id -> Nullable<BigInt>,
        role_id -> Integer,
        number_of_prints -> Nullable<Integer>,
        prints_used -> Integer,
        created_by_user_id -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    projects (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        color -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    files (id) {
        id -> BigInt,
        user_id -> BigInt,
        organization_id -> BigInt,
        project_id -> Nullable<BigInt>,
        state -> Text,
        filename -> Text,
        kind -> Text,
        size -> BigInt,
        sha256 -> Text,
        storage_key -> Text,
        upload_type_id -> Integer,
        upload_soft_name -> Nullable<Text>,
        printer_type_id -> Nullable<BigInt>,
        slicer -> Nullable<Text>,
        zip -> Bool,
        analysis -> Nullable<Text>,
        slicer_settings -> Nullable<Text>,
        picture -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    jobs (id) {
        id -> BigInt,
        organization_id -> BigInt,
        printer_id -> BigInt,
        file_id -> BigInt,
        user_id -> BigInt,
        share_id -> Nullable<BigInt>,
        status_id -> Integer,
        change_seq -> BigInt,
        notes -> Nullable<Text>,
        percent -> Double,
        print_time -> Integer,
        printing_duration -> Integer,
        material_type -> Text,
        layer_height -> Double,
        color_numbers -> Integer,
        extruders -> Text,
        weight -> Double,
        heated_bed -> Bool,
        heated_bed_temperature -> Integer,
        raft -> Bool,
        supports -> Bool,
        file_cost -> Nullable<Double>,
        cost -> Nullable<Double>,
        charged -> Bool,
        cancel_reason -> Nullable<Text>,
        cancel_details -> Nullable<Text>,
        cancelled_by_user_id -> Nullable<BigInt>,
        started_by_user_id -> Nullable<BigInt>,
        feedback -> Nullable<Text>,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        ended_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
        download_token_hash -> Nullable<Text>,
        cancel_source -> Nullable<Text>,
        priority -> Integer,
        farm_copy_id -> Nullable<BigInt>,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(jobs -> files (file_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    sessions,
    workgroups,
    printers,
    printer_shares,
    projects,
    files,
    jobs,
);
